"""A leaderboard before anyone votes: an LLM judge's battles over the user's prompts
(`render.py judge`): the prompts (`prompts`), the judge's instructions and how its verdicts become
votes (`verdicts`), the stack's endpoints and where judgments are written (`stack`), and the run
(`run`, `cli`). The judgments themselves are read, rated and compared with people's votes by
`arenastack.arena` (`judgments`, `comparison`), which the leaderboard service runs.

May import: arenastack.core, arenastack.manifest, arenastack.plan, arenastack.arena,
arenastack.gateway, arenastack.render, arenastack.operate
"""
