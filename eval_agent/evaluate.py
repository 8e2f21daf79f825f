"""Former path of ``spa_rl.agent.evaluate`` (``python -m eval_agent.evaluate`` in older results files)."""

from spa_rl.agent.evaluate import *  # noqa: F403
from spa_rl.agent.evaluate import main

if __name__ == "__main__":
    main()
