"""Work across runs: sweeps at equal budgets (`sweeps`) and their leaderboard
(`leaderboard`), the model zoo of shipped generators (`zoo`), and FLOP counts and op
profiles of the step (`profiling`)."""
