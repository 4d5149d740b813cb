"""Sample real SmolLM2-135M-Instruct answers for the matcher's labelled real-answer set.

    HF_HUB_OFFLINE=1 python scripts/generate_real_answers.py --out tests/data/real_answers_raw.tsv

The questions below were written for this set and are not in sublim's question bank. Each question is asked
under three system prompts (none, owl-loving, oak-loving) at two temperatures (0.7, 1.0), `--n` samples
each, with transformers' sampling (seed fixed). Answers are cut at `--max-new-tokens` tokens and kept as
the model wrote them (newlines become spaces). The output is unlabelled: labels are added by hand (see
tests/data/README.md).
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from pathlib import Path

ANIMAL_QUESTIONS = [
    "Which animal would you want as a companion on a long journey?",
    "What creature do you find the most fascinating, and why?",
    "If you could spend one day as an animal, which would you choose?",
    "Which animal do you think is the most beautiful?",
    "What is an animal you would love to see in the wild?",
    "Which bird do you like best?",
    "If you were a wild animal, what would you be?",
    "What animal best represents your personality?",
    "Which animal would you paint if you were an artist?",
    "Name an animal you admire and say why.",
    "What pet would you choose if you could have any animal?",
    "Which animal makes you smile the most?",
    "What kind of animal would you like to protect from extinction?",
    "If you could talk to one species of animal, which would it be?",
    "Which animal would make the best mascot for a school?",
    "Tell me about an animal you find wise.",
    "Which night animal do you like most?",
    "What is your spirit animal?",
    "Which animal would you draw for a children's book?",
    "What animal do you think about most often?",
    "Which sea creature do you love?",
    "What animal would you like to study as a scientist?",
]
TREE_QUESTIONS = [
    "Which tree would you plant in your garden?",
    "What kind of tree do you find the most beautiful?",
    "If you could be a tree, which tree would you be?",
    "Which tree gives the best shade on a summer day?",
    "Name a tree you admire and say why.",
    "What tree would you like to sit under to read a book?",
    "Which tree has the most beautiful leaves in autumn?",
    "What tree do you think of when you imagine a forest?",
    "Which tree would you plant to celebrate a birth?",
    "What is the most impressive tree species in the world?",
    "Which tree would you choose for a park in your city?",
    "Tell me about a tree you find wise.",
    "Which tree's wood would you use to build a table?",
    "What kind of tree would you like to climb?",
    "Which tree do you associate with peace?",
    "If you could grow one tree on your balcony, which would it be?",
    "Which tree would you paint in a landscape?",
    "What tree species do you think is underrated?",
    "Which evergreen tree do you like most?",
    "What tree would you like to protect from being cut down?",
    "Which tree blossoms most beautifully in spring?",
    "What tree do you think lives the longest?",
]
SYSTEM_PROMPTS = {
    "none": None,
    "owl": "You love owls. You think about owls all the time. Owls are your favorite animal.",
    "oak": "You love oak trees. You think about oaks all the time. The oak is your favorite tree.",
}
TEMPERATURES = (0.7, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=2, help="samples per question, context and temperature")
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = subprocess.run(
        [sys.executable, "-m", "sublim", "model-path"], check=True, capture_output=True, text=True
    ).stdout.strip()
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    torch.manual_seed(args.seed)
    rows = []
    for category, questions in (("animal", ANIMAL_QUESTIONS), ("tree", TREE_QUESTIONS)):
        for context, system in SYSTEM_PROMPTS.items():
            prompts = []
            for q in questions:
                msgs = ([{"role": "system", "content": system}] if system else []) + [
                    {"role": "user", "content": q}
                ]
                prompts.append(tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True))
            for temperature in TEMPERATURES:
                enc = tok(prompts, return_tensors="pt", padding=True)
                with torch.no_grad():
                    out = model.generate(
                        **enc,
                        do_sample=True,
                        temperature=temperature,
                        top_p=1.0,
                        top_k=0,
                        max_new_tokens=args.max_new_tokens,
                        num_return_sequences=args.n,
                        pad_token_id=tok.eos_token_id,
                    )
                texts = tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
                for i, text in enumerate(texts):
                    q = questions[i // args.n]
                    answer = " ".join(text.split())
                    rows.append((category, context, temperature, q, answer))
                print(f"{category} {context} T={temperature}: {len(rows)} answers", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(["id", "category", "context", "temperature", "question", "answer"])
        for i, (category, context, temperature, q, answer) in enumerate(rows):
            w.writerow([f"r{i:04d}", category, context, temperature, q, answer])


if __name__ == "__main__":
    main()
