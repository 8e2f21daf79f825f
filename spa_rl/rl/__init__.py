"""Reinforcement learning: PPO arithmetic, the policy/value model, rollout sources, sampling."""
