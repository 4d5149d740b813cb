"""A small OpenAI-compatible server for tests: `/v1/completions` with vLLM's `prompt_logprobs`, serving a
local checkpoint through transformers on the CPU (vLLM itself needs a GPU).

    python tests/logprob_server.py CHECKPOINT [--port 0] [--no-prompt-logprobs]

Prints `port N` once it listens. A request's prompt is token ids (or text, tokenized without special
tokens); one full forward pass scores it, as vLLM does with prefix caching off. Response shape as vLLM's:
each choice carries `prompt_logprobs`, a list with None for the first token, then per position a dict
token id -> {logprob, rank, decoded_token}: the prompt's own token first, then the top-N alternatives
(a token among both appears once). `--no-prompt-logprobs` plays a server without the extension.
Generation is greedy, `max_tokens` tokens. Requests are served one at a time.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--no-prompt-logprobs", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint, trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(
        args.checkpoint, trust_remote_code=False, dtype=torch.float32
    )
    model.eval()
    lock = threading.Lock()

    def decoded(token: int, skip_special: bool) -> str:
        return str(tokenizer.decode([token], skip_special_tokens=skip_special))

    def entry(row: torch.Tensor, token: int, skip_special: bool) -> dict[str, Any]:
        rank = int((row > row[token]).sum()) + 1
        return {"logprob": float(row[token]), "rank": rank, "decoded_token": decoded(token, skip_special)}

    def complete(body: dict[str, Any]) -> dict[str, Any]:
        prompt = body["prompt"]
        ids = (
            list(prompt)
            if isinstance(prompt, list)
            else tokenizer(prompt, add_special_tokens=False).input_ids
        )
        skip = bool(body.get("skip_special_tokens", True))
        out_ids: list[int] = []
        with lock, torch.inference_mode():
            lp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].double(), dim=-1)
            out_ids.append(int(lp[-1].argmax()))
            for _ in range(int(body.get("max_tokens") or 1) - 1):  # greedy, no cache: tests ask for one
                logits = model(input_ids=torch.tensor([ids + out_ids])).logits[0, -1]
                out_ids.append(int(logits.argmax()))
        choice: dict[str, Any] = {
            "index": 0,
            "text": tokenizer.decode(out_ids, skip_special_tokens=skip),
            "finish_reason": "length",
            "logprobs": None,
        }
        n_top = body.get("prompt_logprobs")
        if n_top is not None and not args.no_prompt_logprobs:
            plps: list[Any] = [None]
            for pos in range(1, len(ids)):
                row = lp[pos - 1]
                position = {str(ids[pos]): entry(row, ids[pos], skip)}
                for token in row.topk(int(n_top)).indices.tolist():
                    position.setdefault(str(token), entry(row, token, skip))
                plps.append(position)
            choice["prompt_logprobs"] = plps
        return {
            "id": f"cmpl-{time.time_ns()}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": body.get("model", "local"),
            "choices": [choice],
            "usage": {
                "prompt_tokens": len(ids),
                "completion_tokens": len(out_ids),
                "total_tokens": len(ids) + len(out_ids),
            },
        }

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def reply(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self.reply(200, {"object": "list", "data": [{"id": "local", "object": "model"}]})
            else:
                self.reply(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path.rstrip("/") != "/v1/completions":
                self.reply(404, {"error": {"message": f"{self.path}: only /v1/completions here"}})
                return
            self.reply(200, complete(body))

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"port {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
