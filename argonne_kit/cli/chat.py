"""``chat``: talk to a model with its tokenizer's chat template (interactive, or one-shot).

Replies stop at the chat EOS (``<|im_end|>`` for ChatML; see :func:`argonne_kit.probe.chat_eos_token_id`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from argonne_kit.errors import CheckpointError

HELP_TEXT = "commands: /reset clears the conversation, /exit (or Ctrl-D) quits"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chat", help="chat with a model using its chat template",
                       description="Chat with a model directory (a Hugging Face directory with config.json, "
                                   "weights and a tokenizer, e.g. RUN_DIR/final_model, or a run directory). "
                                   "Interactive by default; --prompt answers one message and exits. "
                                   "Replies stop at the chat EOS of the tokenizer's template.")
    p.add_argument("model_dir", metavar="MODEL_DIR", help="model directory, or a run directory with final_model/")
    p.add_argument("--prompt", help="answer this one message non-interactively and exit")
    p.add_argument("--system", help="system message put before the conversation")
    p.add_argument("--max-new-tokens", type=int, default=256, help="tokens per reply at most (default 256)")
    p.add_argument("--temperature", type=float, default=0.0,
                   help="sampling temperature; 0 = greedy (default 0)")
    p.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling threshold when sampling (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="random seed for sampling (default 0)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where to run; auto = CUDA when available (default auto)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow the model directory's own Python code to run (off: such a model is refused)")
    p.set_defaults(func=cmd_chat)


def locate_model_dir(value: str) -> Path:
    """The model directory itself, or ``final_model/`` inside a run directory."""
    from argonne_kit.train.export import FINAL_MODEL_DIR

    path = Path(value)
    for candidate in (path, path / FINAL_MODEL_DIR):
        if (candidate / "config.json").is_file():
            return candidate
    raise CheckpointError(f"chat: {value} is not a model directory (no config.json) nor a run directory "
                          f"with final_model/")


def load_chat_model(model_dir: Path, device: str, *, trust_remote_code: bool = False):
    import torch

    from argonne_kit.model import register_auto_classes
    from argonne_kit.safe_io import load_pretrained

    register_auto_classes()  # model_type argonne2/argonne → the kit's classes
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model, tokenizer = load_pretrained(model_dir, trust_remote_code=trust_remote_code)
    return model.to(device).eval(), tokenizer


def cmd_chat(args: argparse.Namespace) -> int:
    import torch

    from argonne_kit.cli.generate import check_sampling_args
    from argonne_kit.probe import chat_eos_token_id, generate_reply

    check_sampling_args(args)
    model_dir = locate_model_dir(args.model_dir)
    model, tokenizer = load_chat_model(model_dir, args.device, trust_remote_code=args.trust_remote_code)
    eos = chat_eos_token_id(tokenizer)
    torch.manual_seed(args.seed)
    system = [{"role": "system", "content": args.system}] if args.system else []

    def reply(messages):
        return generate_reply(model, tokenizer, messages, max_new_tokens=args.max_new_tokens, eos_token_id=eos,
                              temperature=args.temperature, top_p=args.top_p)["answer"]

    if args.prompt is not None:
        print(reply([*system, {"role": "user", "content": args.prompt}]))
        return 0
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"chatting with {model_dir} ({HELP_TEXT})")
    history = list(system)
    while True:
        try:
            line = input("you> " if interactive else "")
        except EOFError:
            break
        text = line.strip()
        if not text:
            continue
        if text == "/exit":
            break
        if text == "/reset":
            history = list(system)
            continue
        history.append({"role": "user", "content": text})
        answer = reply(history)
        history.append({"role": "assistant", "content": answer})
        print(f"model> {answer}" if interactive else answer, flush=True)
    return 0
