"""The rekall.tuner example, run by async_tuner: only the import changes.

The original evaluated a Rekall query. Here ``eval_config`` computes a stand-in score that
is best at param1 = 1.0 and param2 = 15.0, so the script runs anywhere:

    python examples/quickstart.py
"""

# An example reports its results with print, which the library itself never uses.
# ruff: noqa: T201

from async_tuner import RandomTuner


def eval_config(params):
    # Stand-in for running a query and evaluating its results.
    score = -((params["param1"] - 1.0) ** 2) - ((params["param2"] - 15.0) / 5.0) ** 2
    return score


search_space = {
    "param1": [0.0, 1.0, 2.0],  # discrete
    "param2": {"range": (10.0, 20.0)},  # linear range
}

tuner = RandomTuner(search_space, eval_config, budget=50)

best_score, best_config, score_history, execution_times, total_cost = tuner.tune()

print(f"best score {best_score:.4f} with {best_config} after {total_cost} evaluations")
