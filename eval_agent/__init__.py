"""Former name of the library, now ``spa_rl``: kept so that the commands recorded in results files
(``python -m eval_agent.evaluate``, ``python -m eval_agent.serve``) still run."""
