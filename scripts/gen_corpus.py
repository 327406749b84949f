#!/usr/bin/python3
"""Writes a deterministic English-like text corpus: Zipf-distributed words from a generated
dictionary, lines of 60-100 characters, spread over several files.

usage: gen_corpus.py --out DIR [--mb 50] [--files 5] [--seed 1]
The same arguments always produce the same bytes."""
import argparse
import itertools
import os
import random
import sys

SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "pe", "da", "ri", "on", "el", "an",
             "st", "th", "er", "in", "qu", "ay", "ou", "ch", "br", "ze", "gu", "fa", "wi", "ly"]
COMMON = ["the", "of", "and", "to", "a", "in", "is", "it", "you", "that", "he", "was", "for",
          "on", "are", "with", "as", "I", "his", "they", "be", "at", "one", "have", "this"]


def dictionary(rng, size):
    words = list(COMMON)
    seen = set(w.lower() for w in words)
    while len(words) < size:
        w = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4)))
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--mb", type=float, default=50)
    ap.add_argument("--files", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.files < 1 or args.mb <= 0:
        print("gen_corpus.py: --files must be >= 1 and --mb > 0", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    words = dictionary(rng, 20000)
    cum = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(len(words))))
    punct = [",", ".", ";", "!", "?", ""]
    os.makedirs(args.out, exist_ok=True)
    per_file = int(args.mb * 1024 * 1024 / args.files)
    for f in range(args.files):
        path = os.path.join(args.out, "part-%02d.txt" % f)
        tmp = path + ".tmp"
        written = 0
        with open(tmp, "w", encoding="ascii", newline="\n") as out:
            while written < per_file:
                batch = rng.choices(words, cum_weights=cum, k=20000)
                lines = []
                line = []
                length = 0
                target = rng.randint(60, 100)
                for i, w in enumerate(batch):
                    if i % 17 == 0:
                        w = w.capitalize()
                    if i % 11 == 0:
                        w += punct[i % len(punct)]
                    line.append(w)
                    length += len(w) + 1
                    if length >= target:
                        lines.append(" ".join(line))
                        line, length = [], 0
                        target = rng.randint(60, 100)
                text = "\n".join(lines) + "\n"
                out.write(text)
                written += len(text)
        os.replace(tmp, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
