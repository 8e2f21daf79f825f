"""The agent library every stage imports: prompts, the ReAct format, chat rendering, policy backends,
the batched rollout runner, the trajectory schema, metrics and the evaluation entry point."""
