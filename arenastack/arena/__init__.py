"""The arena's results: the votes FastChat writes (`votelog`), ratings from them (`ratings`), the
leaderboard as people read it (`leaderboard`) and the service that keeps it current on the logs
volume (`leaderboard_service`).

The leaderboard service runs in the FastChat image, which carries this package and the modules
of arenastack.core it imports, nothing else (the repository's .dockerignore says which): keep
its imports to the standard library, numpy, matplotlib and rich.

May import: arenastack.core
"""
