"""``lavid teacher ...``: the Stage 1b command line (per-image teachers for the multimodal-LLM baselines)."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import LavidError
from ..image_teacher.vlm import (CHAT_ASPECT_TEMPLATE, CHAT_FEATURE_TEMPLATE, PAPER_ASPECT_MODEL, PAPER_ASPECT_TEMPLATE,
                  PAPER_FEATURE_MODEL, PAPER_FEATURE_TEMPLATE, PAPER_LAYERS)


def _common(p, model_default: str | None, model_help: str) -> None:
    p.add_argument("--cfg", required=True, help="the training config whose training split is read (same dataset, "
                   "split and sample ids as training)")
    p.add_argument("--model", default=model_default, required=model_default is None, help=model_help)
    p.add_argument("-o", "--output", required=True, help="bank file (.safetensors); OUTPUT.parts/ holds the "
                   "finished chunks until the bank is written (a killed run resumes from them)")
    p.add_argument("--batch-size", type=int, default=8, help="prompts per forward pass (default 8; the authors: 1)")
    p.add_argument("--chunk-size", type=int, default=256, help="images per resumable chunk")
    p.add_argument("--device")
    p.add_argument("--device-map", help="e.g. 'auto' for a model larger than one GPU")
    p.add_argument("--chat", action="store_true", help="wrap the prompt in the processor's chat template (for chat "
                   "models such as InternVL); --template is then the user message's text")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE", help="config overrides, e.g. DATASET.ROOT ./data/cub")


def add_parser(sub) -> None:
    p = sub.add_parser("teacher", help="Stage 1b: per-image teacher banks from a vision-language model")
    ss = p.add_subparsers(dest="teacher_cmd", required=True)

    f = ss.add_parser("features", help="hidden states per training image (FitNet / CRD on LLaVA features)")
    _common(f, PAPER_FEATURE_MODEL, f"image-text-to-text model (default: the paper's {PAPER_FEATURE_MODEL})")
    f.add_argument("--layers", type=int, nargs="+", default=list(PAPER_LAYERS),
                   help=f"hidden-state indices, -1 = the last layer (default: Table B's {list(PAPER_LAYERS)}; "
                        f"Table 1 uses -12)")
    f.add_argument("--template", help="prompt; {class} is the image's class name, taken from its label, {image} the "
                   f"image token (default: the authors' {PAPER_FEATURE_TEMPLATE!r}; with --chat "
                   f"{CHAT_FEATURE_TEMPLATE!r})")
    f.set_defaults(func=cmd_features)

    r = ss.add_parser("import", help="the authors' released per-image aspect bank (internvl2_img.json) -> a bank file")
    r.add_argument("file", help="their JSON or JSONL: {image name: [P(Yes) per aspect question]}")
    r.add_argument("--cfg", required=True, help="the training config whose training images the bank must cover")
    r.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE", help="config overrides")
    r.add_argument("-o", "--output", required=True, help="bank file (.safetensors) for MAKD.BANK")
    r.set_defaults(func=cmd_import)

    _add_released(ss)

    a = ss.add_parser("aspects", help="MaKD's targets: P(Yes) per training image and aspect question")
    _common(a, None, f"image-text-to-text model (the paper: {PAPER_ASPECT_MODEL}; transformers' native InternVL "
                     f"classes load its '-hf' conversions, the original repository needs --trust-remote-code)")
    a.add_argument("--questions", required=True, help="aspect questions, one per line (lavid teacher aspect-questions)")
    a.add_argument("--template", help="prompt; {question} is the aspect question, {image} the image token "
                   f"(default: the authors' {PAPER_ASPECT_TEMPLATE!r}; with --chat {CHAT_ASPECT_TEMPLATE!r})")
    a.add_argument("--labels", nargs=2, default=["Yes", "No"], metavar=("YES", "NO"),
                   help="the answer tokens; P(YES) = softmax over their next-token logits (default: Yes No)")
    a.add_argument("--label-ids", choices=("token", "encode"), default="token",
                   help="token (the authors'): the vocabulary entry spelled as the label, convert_tokens_to_ids('Yes'); "
                        "encode: the single token the label's text encodes to (a Llama tokenizer gives '▁Yes')")
    a.set_defaults(func=cmd_aspects)

    g = ss.add_parser("aspect-questions", help="generate MaKD's aspect questions for a dataset with an LLM")
    g.add_argument("--classes", help="class list (JSON list or one name per line)")
    g.add_argument("--cfg", help="...or the training config whose class names to use")
    g.add_argument("-n", "--num-questions", type=int, default=50, help="aspect questions (the authors' banks hold 50)")
    g.add_argument("--description", help="what the images show, e.g. 'photographs of birds'")
    g.add_argument("--backend", choices=["hf", "openai"], default="openai",
                   help="as lavid signature questions: a local HF chat model or an OpenAI-compatible endpoint")
    g.add_argument("--model")
    g.add_argument("--base-url", default="https://api.openai.com/v1")
    g.add_argument("--api-key-env", default="OPENAI_API_KEY")
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--max-rounds", type=int, default=4)
    g.add_argument("--trust-remote-code", action="store_true")
    g.add_argument("--print-prompt", action="store_true", help="print the prompt and exit")
    g.add_argument("-o", "--output")
    g.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE", help="config overrides (with --cfg)")
    g.set_defaults(func=cmd_aspect_questions)

    t = ss.add_parser("make-tiny-vlm", help="write a tiny random-weight LLaVA + processor (for trying the tools)")
    t.add_argument("output")
    t.add_argument("--cfg", help="training config whose class names enter the vocabulary")
    t.add_argument("--questions", help="aspect question file whose words enter the vocabulary")
    t.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE", help="config overrides (with --cfg)")
    t.set_defaults(func=cmd_make_tiny_vlm)


def _teacher(args):
    from ..hf import check_model_source
    from ..utils import check_output_path
    from ..image_teacher.vlm import VLMTeacher, load_vlm

    check_output_path(args.output)
    check_model_source(args.model, trust_remote_code=args.trust_remote_code)
    model, processor = load_vlm(args.model, device=args.device, device_map=args.device_map,
                                trust_remote_code=args.trust_remote_code,
                                progress=not getattr(args, "no_progress", False))
    return VLMTeacher(model, processor, model_id=args.model, chat=args.chat)


def _add_released(ss) -> None:
    from ..authors_release import DEFAULT_BANK_MODEL, add_source_arguments

    r = ss.add_parser("released", help="fetch the authors' released per-image aspect bank (pinned commit and "
                      "checksums) and import it for a config: MaKD's teacher of Table 1 in one command")
    r.add_argument("dataset", help="cub, flowers, aircraft, pets or cars (the datasets with a released bank)")
    r.add_argument("--model", default=DEFAULT_BANK_MODEL, help=f"whose answers (default {DEFAULT_BANK_MODEL}, the "
                   "paper's InternVL2-8B; pets also has llava1.5)")
    r.add_argument("--cfg", help="the training config whose training images the bank must cover (default: "
                   "configs/lavid/<dataset>/res18_makd.yaml)")
    r.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE", help="config overrides")
    add_source_arguments(r)
    r.add_argument("-o", "--output", help="bank file (default: the config's MAKD.BANK)")
    r.set_defaults(func=cmd_released)


def cmd_released(args) -> int:
    from .. import authors_release as rel
    from ..config import load_cfg
    from ..image_teacher.released import import_released_bank
    from ..utils import check_output_path

    ds = rel.dataset(args.dataset)
    path = rel.bank_path(ds, args.model)
    cfg = load_cfg(args.cfg or f"configs/lavid/{ds.folder}/res18_makd.yaml", args.opts)
    out = args.output or cfg.MAKD.BANK
    if not out:
        raise LavidError(f"--cfg {args.cfg} sets no MAKD.BANK; give -o")
    check_output_path(out)
    images = training_images(cfg)  # a missing dataset fails before the download
    file, prov = rel.fetch(path, **rel.source_of(args))
    bank = import_released_bank(file, images.sample_ids, images.description)
    bank.provenance["released"] = prov
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    bank.save(out)
    print(f"wrote {out}: {len(bank)} images x {bank.p_yes.shape[1]} aspects (p_yes) from "
          f"{prov['repository']}@{prov['commit'][:12]} {path}")
    return 0


def cmd_import(args) -> int:
    from ..image_teacher.released import import_released_bank
    from ..utils import check_output_path

    check_output_path(args.output)
    images = _images(args)
    bank = import_released_bank(args.file, images.sample_ids, images.description)
    bank.save(args.output)
    prov = bank.provenance
    print(f"wrote {args.output}: {len(bank)} images x {bank.p_yes.shape[1]} aspects (p_yes) from {args.file} "
          f"({prov['rows_in_file'] - prov['rows_used']} of its rows are not training images of this config)")
    return 0


def _images(args):
    from ..config import load_cfg

    return training_images(load_cfg(args.cfg or None, args.opts))


def _run(args, teacher, images, job) -> int:
    from ..image_teacher.jobs import extract_bank

    bank = extract_bank(teacher, images, job, args.output, batch_size=args.batch_size, chunk_size=args.chunk_size,
                        progress=not args.no_progress)
    shapes = ", ".join(f"{n} {tuple(t.shape[1:])}" for n, t in bank.tensors().items())
    print(f"wrote {args.output}: {len(bank)} images; {shapes}")
    return 0


def cmd_features(args) -> int:
    from ..image_teacher.jobs import feature_job

    images = _images(args)  # a bad config or dataset fails before the model loads
    teacher = _teacher(args)
    template = args.template or (CHAT_FEATURE_TEMPLATE if args.chat else PAPER_FEATURE_TEMPLATE)
    return _run(args, teacher, images, feature_job(teacher, images, args.layers, template))


def cmd_aspects(args) -> int:
    from ..image_teacher.aspects import read_aspect_questions
    from ..image_teacher.jobs import aspect_job

    questions = read_aspect_questions(args.questions)
    images = _images(args)
    teacher = _teacher(args)
    template = args.template or (CHAT_ASPECT_TEMPLATE if args.chat else PAPER_ASPECT_TEMPLATE)
    return _run(args, teacher, images, aspect_job(teacher, questions, template, tuple(args.labels),
                                                  label_ids=args.label_ids))


def _class_names(args) -> list[str]:
    if args.classes:
        from ..signature.llm_signature import read_class_names

        return read_class_names(args.classes)
    if args.cfg or args.opts:
        return _images(args).class_names
    raise LavidError("give --classes or --cfg")


def cmd_aspect_questions(args) -> int:
    from ..signature.generate import HFChatBackend, OpenAIChatBackend
    from ..image_teacher.aspects import aspect_prompt, generate_aspect_questions, write_aspect_questions

    names = _class_names(args)
    if args.print_prompt:
        print(aspect_prompt(names, args.num_questions, args.description))
        return 0
    if not args.output or not args.model:
        raise LavidError("--model and -o/--output are required (or use --print-prompt)")
    if args.backend == "openai":
        chat = OpenAIChatBackend(args.base_url, args.model, api_key_env=args.api_key_env, temperature=args.temperature)
    else:
        chat = HFChatBackend(args.model, temperature=args.temperature, trust_remote_code=args.trust_remote_code)
    qs = generate_aspect_questions(chat, names, args.num_questions, description=args.description,
                                   max_rounds=args.max_rounds, log=lambda m: print(m, file=sys.stderr))
    write_aspect_questions(args.output, qs)
    print(f"wrote {len(qs)} aspect questions to {args.output}")
    return 0


def cmd_make_tiny_vlm(args) -> int:
    from ..image_teacher.tiny_vlm import write_tiny_llava
    from ..utils import check_output_path

    check_output_path(args.output, folder=True)

    corpus = []
    if args.cfg or args.opts:
        corpus += [n.replace("_", " ") for n in _images(args).class_names]
    if args.questions:
        from ..image_teacher.aspects import read_aspect_questions

        corpus += read_aspect_questions(args.questions)
    write_tiny_llava(args.output, corpus)
    print(f"wrote a tiny random LLaVA to {args.output} (its answers are random)")
    return 0


def training_images(cfg):
    """The training split of ``cfg``'s dataset, as training builds it (same split, same sample ids)."""
    from ..data import build_splits, image_list_of, sample_ids
    from ..image_teacher.jobs import TeacherImages
    from ..utils import sha256_text

    splits = build_splits(cfg, ("image",))
    ds = image_list_of(splits.train)
    ids = sample_ids(splits, cfg.DATASET.ROOT)
    desc = {"type": cfg.DATASET.TYPE, "group": getattr(cfg.DATASET, "GROUP", ""), "split": "train",
            "root": str(cfg.DATASET.ROOT), "num_images": len(ids),
            "sample_ids_sha256": sha256_text(*ids)}
    return TeacherImages(ds, ids, list(ds.targets), list(ds.classes), desc)
