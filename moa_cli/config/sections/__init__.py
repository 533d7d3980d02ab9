"""One checker per config section: each turns its table into checked values, or raises one
ConfigError line naming the file, the key and what was expected.

    defaults.py   [defaults]            -> the checked values, by key
    providers.py  [providers.NAME]      -> ProviderSpec per provider (built-ins included)
    mixes.py      [mixes.NAME]          -> Mix (built-in mixes are the same data)
    pricing.py    [pricing."P:M"]       -> (input, output) dollars per million tokens
    local.py      [local]               -> GGUF paths of local model names

The config source (source.py) calls them and layers the results with the flags.
"""
