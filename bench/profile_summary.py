"""Summarise py-spy collapsed stacks (`bench/run.py --profile DIR`): where the workers' time goes.

    .venv/bin/python bench/profile_summary.py DIR/run-1.txt [--match services,http,engine]

Prints, per kind of process and thread, the share of samples that pass through each function whose
file matches one of --match (inclusive time), busiest first, and the idle share.
"""

import argparse
import re
from collections import Counter, defaultdict

FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:()]+):\d+\)$")
IDLE = ("select", "poll", "epoll", "wait", "acquire", "recv", "read", "sleep", "_recv", "_wait_for_tstate_lock")


ROLES = (  # a frame that names what a thread does -> its label
    ("Client._run (deliveries/engine/http.py", "engine: event loop (HTTP)"),
    ("_record_forever (deliveries/engine/engine.py", "engine: recorder"),
    ("trace_task (celery/app/trace.py", "tasks"),
    ("beat.py", "beat"),
    ("Hub.create_loop (kombu", "celery consumer"),
)


def kind_of(frames: list[str]) -> str:
    text = ";".join(frames)
    role = next((label for marker, label in ROLES if marker in text), "other")
    processes = [f for f in frames if f.startswith("process ")]
    return role if len(processes) <= 1 else f"{role} (pool process)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stacks")
    parser.add_argument("--match", default="deliveries/,psycopg/,aiohttp/,requests/,urllib3/,kombu/,celery/app/trace")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    wanted = [m.strip() for m in args.match.split(",") if m.strip()]

    totals: Counter = Counter()
    inclusive: dict[str, Counter] = defaultdict(Counter)
    idle: Counter = Counter()
    with open(args.stacks) as stacks:
        for line in stacks:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            frames = stack.split(";")
            n = int(count)
            kind = kind_of(frames)
            totals[kind] += n
            seen = set()
            for frame in frames:
                m = FRAME.match(frame)
                if m and any(w in m["file"] for w in wanted):
                    label = f"{m['func']} ({m['file'].split('site-packages/')[-1]})"
                    if label not in seen:
                        seen.add(label)
                        inclusive[kind][label] += n
            leaf = FRAME.match(frames[-1])
            if leaf and any(leaf["func"].lstrip("_").startswith(i) for i in IDLE):
                idle[kind] += n

    for kind, total in totals.most_common():
        print(f"\n{kind}: {total} samples, {idle[kind] / total:.0%} idle (waiting in select/poll/locks)")
        for label, n in inclusive[kind].most_common(args.top):
            print(f"  {n / total:6.1%}  {label}")


if __name__ == "__main__":
    main()
