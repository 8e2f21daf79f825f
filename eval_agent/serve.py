"""Former path of ``spa_rl.agent.serve`` (``python -m eval_agent.serve`` in older commands)."""

from spa_rl.agent.serve import *  # noqa: F403
from spa_rl.agent.serve import main

if __name__ == "__main__":
    main()
