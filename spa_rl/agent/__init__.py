"""The library agents are built from: prompts, parsing, chat, backends, rollouts, records, evaluation."""
