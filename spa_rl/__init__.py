"""The SPA-RL library every stage recipe imports, grouped by what it is for:

- ``spa_rl.agent``: prompts, the ReAct format, chat rendering, policy backends, the batched rollout runner,
  the trajectory schema, metrics, expert conversations, evaluation and the OpenAI-compatible server;
- ``spa_rl.estimator``: the progress estimator (model, data, inference);
- ``spa_rl.rewards``: step-value variants and reward fusion;
- ``spa_rl.rl``: PPO arithmetic, the policy/value model, rollout sources and sampling;
- ``spa_rl.models``: model paths, tokenizer loading, device and dtype choice;
- ``spa_rl.training``, ``spa_rl.fingerprint``, ``spa_rl.validate``, ``spa_rl.stats``: what the recipes
  share (training helpers, run fingerprints and locks, input checks, statistics).
"""
