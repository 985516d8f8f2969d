"""``chat``: talk to a model with its tokenizer's chat template (interactive, or one-shot).

Replies stop at the chat EOS (``<|im_end|>`` for ChatML; see :func:`argonne_kit.probe.chat_eos_token_id`).
"""

from __future__ import annotations

import argparse
import sys

HELP_TEXT = "commands: /reset clears the conversation, /exit (or Ctrl-D) quits"


def add_parser(sub: argparse._SubParsersAction) -> None:
    from argonne_kit.cli._model import MODEL_HELP, add_model_arguments

    p = sub.add_parser(
        "chat",
        help="chat with a model using its chat template",
        description="Chat with MODEL, which is " + MODEL_HELP + ". Interactive by default; "
        "--prompt answers one message and exits. Replies stop at the chat EOS of "
        "the tokenizer's template.",
    )
    add_model_arguments(p)
    p.add_argument("--prompt", help="answer this one message non-interactively and exit")
    p.add_argument("--system", help="system message put before the conversation")
    p.add_argument("--max-new-tokens", type=int, default=256, help="tokens per reply at most (default 256)")
    p.add_argument("--temperature", type=float, default=0.0, help="sampling temperature; 0 = greedy (default 0)")
    p.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling threshold when sampling (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="random seed for sampling (default 0)")
    p.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="where to run; auto = CUDA when available (default auto)",
    )
    p.set_defaults(func=cmd_chat)


def cmd_chat(args: argparse.Namespace) -> int:
    import torch

    from argonne_kit.cli._model import resolve_model_arg
    from argonne_kit.cli.generate import check_sampling_args
    from argonne_kit.probe import chat_eos_token_id, generate_reply

    check_sampling_args(args)
    source = resolve_model_arg(args)
    device = args.device if args.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    model, tokenizer = source.load_model(device=device), source.load_tokenizer()
    eos = chat_eos_token_id(tokenizer)
    torch.manual_seed(args.seed)
    system = [{"role": "system", "content": args.system}] if args.system else []

    def reply(messages):
        return generate_reply(
            model,
            tokenizer,
            messages,
            max_new_tokens=args.max_new_tokens,
            eos_token_id=eos,
            temperature=args.temperature,
            top_p=args.top_p,
        )["answer"]

    if args.prompt is not None:
        print(reply([*system, {"role": "user", "content": args.prompt}]))
        return 0
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"chatting with {source.describe()} ({HELP_TEXT})")
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
