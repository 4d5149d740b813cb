"""A small OpenAI-compatible server for tests: `/v1/completions` with vLLM's `prompt_logprobs`, serving a
local checkpoint through transformers on the CPU (vLLM itself needs a GPU).

    python tests/logprob_server.py CHECKPOINT [--port 0] [--no-prompt-logprobs]

Prints `port N` once it listens. A request's prompt is token ids (or text, tokenized without special
tokens); a forward pass scores it, reusing the KV cache of the prefix it shares with the requests around it
(see `batch_logprobs`). Response shape as vLLM's: each choice carries `prompt_logprobs`, a list with None
for the first token, then per position a dict token id -> {logprob, rank, decoded_token}: the prompt's own
token first, then the top-N alternatives (a token among both appears once). `logprobs: N` lists the
generated token's top N by text, as the completions API does, or as "token_id:N" with vLLM's
`return_tokens_as_token_ids`. `--no-prompt-logprobs` plays a server without the extension. It generates
one token, greedily. Requests that arrive together run as one batch, on one CPU thread.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import queue
import sys
import threading
import time
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.modeling_outputs import CausalLMOutputWithPast

#: transformers 5 renamed the KV-cache argument and output field from past_key_values to cache
CACHE = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


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
    pending: queue.Queue[tuple[list[int], Future[torch.Tensor]]] = queue.Queue()
    shared: dict[str, Any] = {"ids": [], "cache": None, "lp": None, "last": []}

    def common(seqs: list[list[int]]) -> int:
        """Length of the prefix every sequence shares, leaving each at least one token of its own."""
        m = 0
        while m < min(len(q) for q in seqs) - 1 and all(q[m] == seqs[0][m] for q in seqs):
            m += 1
        return m

    def batch_logprobs(seqs: list[list[int]]) -> list[torch.Tensor]:
        """Log-softmax rows for every position of each sequence, in one batched pass over what follows a
        cached prefix: the prefix the sequences share (the eval context: requests differ only in the name
        after it) runs once and its KV cache is reused. vLLM turns its own prefix cache off for
        prompt-logprob requests, which costs it time, not numbers (rows agree with a full pass to float
        error)."""
        cached = shared["ids"]
        if not cached or common([*seqs, [*cached, -1]]) < len(cached):
            # one request alone: what it shares with the one before (both start with the eval context)
            m = common([*seqs, shared["last"]] if len(seqs) == 1 and shared["last"] else seqs)
            shared["last"] = seqs[0]
            if m < 8:  # nothing worth caching: a full pass each
                return [
                    torch.log_softmax(model(input_ids=torch.tensor([q])).logits[0].double(), -1) for q in seqs
                ]
            out = model(input_ids=torch.tensor([seqs[0][:m]]), use_cache=True)
            lp = torch.log_softmax(out.logits[0].double(), dim=-1)
            shared.update(ids=seqs[0][:m], cache=getattr(out, CACHE), lp=lp)
        shared["last"] = seqs[0]
        n = len(shared["ids"])
        rest = [q[n:] for q in seqs]
        width = max(len(r) for r in rest)
        inputs = torch.tensor([r + [0] * (width - len(r)) for r in rest])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rest])
        cache = copy.deepcopy(shared["cache"])
        cache.batch_repeat_interleave(len(seqs))
        out = model(
            input_ids=inputs,
            attention_mask=torch.cat([torch.ones((len(seqs), n), dtype=torch.long), mask], dim=1),
            position_ids=(n + torch.arange(width)).unsqueeze(0).expand(len(seqs), -1),
            **{CACHE: cache},
        )
        lp = torch.log_softmax(out.logits.double(), dim=-1)
        return [torch.cat([shared["lp"], lp[i, : len(r)]]) for i, r in enumerate(rest)]

    def batcher() -> None:
        """Serves the queue: what arrived together (up to 16 requests) runs as one batch."""
        while True:
            batch = [pending.get()]
            time.sleep(0.002)
            while len(batch) < 16:
                try:
                    batch.append(pending.get_nowait())
                except queue.Empty:
                    break
            try:
                with torch.inference_mode():
                    rows = batch_logprobs([ids for ids, _ in batch])
                for (_, done), row in zip(batch, rows, strict=True):
                    done.set_result(row)
            except Exception as e:  # the requests fail, the server stays up
                for _, done in batch:
                    done.set_exception(e)

    threading.Thread(target=batcher, daemon=True).start()

    tokenizing = threading.Lock()  # handler threads share the (fast, not thread-safe) tokenizer

    @functools.cache
    def decoded(token: int, skip_special: bool) -> str:
        with tokenizing:
            return str(tokenizer.decode([token], skip_special_tokens=skip_special))

    def encode(text: str) -> list[int]:
        with tokenizing:
            return list(tokenizer(text, add_special_tokens=False).input_ids)

    def entry(logprob: float, rank: int, token: int, skip_special: bool) -> dict[str, Any]:
        return {"logprob": logprob, "rank": rank, "decoded_token": decoded(token, skip_special)}

    def complete(body: dict[str, Any]) -> dict[str, Any]:
        prompt = body["prompt"]
        ids = list(prompt) if isinstance(prompt, list) else encode(prompt)
        skip = bool(body.get("skip_special_tokens", True))
        done: Future[torch.Tensor] = Future()
        pending.put((ids, done))
        lp = done.result()
        out_ids = [int(lp[-1].argmax())]  # greedy, one token: all probability mode asks for
        text = decoded(out_ids[0], skip)
        choice: dict[str, Any] = {"index": 0, "text": text, "finish_reason": "length", "logprobs": None}
        if body.get("logprobs"):  # completions format: the generated token's top-N, keyed by text or id
            top = lp[-1].topk(int(body["logprobs"]))
            as_ids = bool(body.get("return_tokens_as_token_ids"))

            def name(t: int) -> str:
                return f"token_id:{t}" if as_ids else decoded(t, skip)

            listed = {name(t): v for v, t in zip(top.values.tolist(), top.indices.tolist(), strict=True)}
            choice["logprobs"] = {
                "tokens": [name(out_ids[0])],
                "token_logprobs": [float(lp[-1, out_ids[0]])],
                "top_logprobs": [listed],
                "text_offset": [0],
            }
        n_top = body.get("prompt_logprobs")
        if n_top is not None and not args.no_prompt_logprobs:
            plps: list[Any] = [None]
            rows = lp[:-1]
            own = rows.gather(1, torch.tensor(ids[1:]).unsqueeze(1))  # the prompt's tokens
            ranks = (rows > own).sum(dim=1) + 1
            top = rows.topk(int(n_top), dim=1)
            for pos in range(1, len(ids)):
                token = ids[pos]
                position = {str(token): entry(float(own[pos - 1]), int(ranks[pos - 1]), token, skip)}
                for r, (v, t) in enumerate(
                    zip(top.values[pos - 1].tolist(), top.indices[pos - 1].tolist(), strict=True)
                ):
                    position.setdefault(str(t), entry(v, r + 1, t, skip))
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
