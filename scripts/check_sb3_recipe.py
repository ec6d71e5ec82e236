"""Check the README's Stable-Baselines3 recipe end to end: train a (tiny) PPO model on
Breakout, record it with `--agent ppo_agent.py:make_agent`, replay the recording.

    uv run --with stable-baselines3 python scripts/check_sb3_recipe.py

Stable-Baselines3 (and torch) are not gymrec dependencies; `--with` brings them for this run.
The model is trained for a few hundred steps only: the point is the plumbing (loading,
`predict(obs, deterministic=True)`, the recorded actions replaying bit-exactly), not its score.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from bench_common import ROOT, free_endpoint

ENV = "BreakoutNoFrameskip-v4"

AGENT = textwrap.dedent('''
    from stable_baselines3 import PPO

    class PPOAgent:
        def __init__(self, action_space):
            self.model = PPO.load("{model}", device="cpu")

        def act(self, observation):
            action, _ = self.model.predict(observation, deterministic=True)
            return int(action)

    make_agent = PPOAgent
''')


def main() -> None:
    import ale_py
    import gymnasium as gym
    from stable_baselines3 import PPO

    gym.register_envs(ale_py)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = PPO("CnnPolicy", gym.make(ENV), n_steps=128, batch_size=64, n_epochs=1,
                    device="cpu", seed=1)
        model.learn(total_timesteps=256)
        model.save(folder / "ppo_breakout.zip")
        agent = folder / "ppo_agent.py"
        agent.write_text(AGENT.format(model=folder / "ppo_breakout.zip"))
        data = folder / "data"
        steps = [sys.executable, "-m", "recorder.cli", ENV, "--agent", f"{agent}:make_agent",
                 "--headless", "--episodes", "2", "--max-steps", "300", "--seed", "1",
                 "--endpoint", free_endpoint(), "--data-dir", str(data)]
        for cmd in (steps, [sys.executable, "-m", "recorder.replay.cli", ENV, "--data-dir",
                            str(data)]):
            print("$", " ".join(cmd[2:]), flush=True)
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            lines = [ln for ln in done.stdout.splitlines() if not ln.startswith(("┃", "│"))]
            print("\n".join(lines[-6:]), f"\n(exit {done.returncode})", flush=True)
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                raise SystemExit(1)


if __name__ == "__main__":
    main()
