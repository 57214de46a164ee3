"""``lavid signature ...``: the Stage 1 command line."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import LavidError
from ..utils import get_logger


def _warn(msg: str) -> None:
    get_logger().warning(msg)


def add_parser(sub) -> None:
    p = sub.add_parser("signature", help="Stage 1: questions, answers and LLM signatures")
    ss = p.add_subparsers(dest="sig_cmd", required=True)

    q = ss.add_parser("questions", help="generate a question file with an LLM")
    q.add_argument("--classes", required=True, help="class list (JSON list or one name per line)")
    q.add_argument("-q", "--num-questions", type=int, default=50)
    q.add_argument("-m", "--num-options", type=int, default=5)
    q.add_argument("--description", help="a short description of the dataset for the prompt")
    q.add_argument("--prompt", choices=["paper", "plugin"], default="paper",
                   help="generation prompt: the paper's appendix A.5 text (default) or the plugin's own wording")
    q.add_argument("--backend", choices=["hf", "openai"], default="openai")
    q.add_argument("--model", help="HF model id/path, or the endpoint's model name")
    q.add_argument("--base-url", default="https://api.openai.com/v1", help="OpenAI-compatible endpoint")
    q.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    q.add_argument("--temperature", type=float, default=1.0)
    q.add_argument("--max-rounds", type=int, default=4)
    q.add_argument("--trust-remote-code", action="store_true")
    q.add_argument("--print-prompt", action="store_true", help="print the exact prompt and exit")
    q.add_argument("-o", "--output", help="question file to write")
    q.set_defaults(func=cmd_questions)

    v = ss.add_parser("validate", help="validation report of a question file")
    v.add_argument("questions")
    v.add_argument("--classes", help="class list, to find options that name a class")
    v.add_argument("-m", "--num-options", type=int)
    v.add_argument("--placeholder", action="append", help="extra placeholder phrase, e.g. 'the flower'")
    v.add_argument("--strict", action="store_true", help="exit 1 when any problem is found")
    v.set_defaults(func=cmd_validate)

    _add_extract(ss)

    _add_file_commands(ss)

    t = ss.add_parser("make-tiny-lm", help="write a tiny random-weight causal LM + tokenizer (for trying the tools)")
    t.add_argument("output")
    t.add_argument("--questions", help="question file whose words enter the vocabulary")
    t.add_argument("--classes", help="class list whose words enter the vocabulary")
    t.add_argument("--vocab-size", type=int, default=2048)
    t.set_defaults(func=cmd_make_tiny_lm)


def _add_file_commands(ss) -> None:
    """import, merge, inspect: commands on signature files."""
    i = ss.add_parser("import", help="convert the authors' released JSON to a signature file")
    i.add_argument("json")
    i.add_argument("--questions", help="the question file it answers (counts are checked)")
    i.add_argument("--classes", help="align to this class list (dataset label order)")
    i.add_argument("--imagenet-group", metavar="GROUP",
                   help="align to the plugin's ImageNet WordNet group (DATASET.GROUP), through each class's "
                        "WordNet lemmas and the released files' names")
    i.add_argument("--normalize-names", action="store_true")
    i.add_argument("--strict", action="store_true", help="refuse a file with a question that has no options "
                   "(default: drop it with a warning, recorded in the provenance)")
    i.add_argument("-o", "--output", help="default: ./NAME.safetensors in the current folder")
    i.set_defaults(func=cmd_import)

    _add_released(ss)

    g = ss.add_parser("merge", help="join the shard files of lavid signature extract --shard i/n into a signature")
    g.add_argument("shards", nargs="+", help="every shard file of one extraction")
    g.add_argument("-o", "--output", required=True, help="signature file (.safetensors)")
    g.set_defaults(func=cmd_merge)

    s = ss.add_parser("inspect", help="summary and heatmap PNG of a signature")
    s.add_argument("signature")
    s.add_argument("--png", help="heatmap path (default: SIGNATURE.png)")
    s.add_argument("-k", type=int, default=5)
    s.add_argument("--attributes", help="JSON {class: [correct option number per question]}: report how often "
                   "the signature's most probable option is the correct one")
    s.add_argument("--question", type=int, help="draw one question's option distribution per class instead "
                   "(the paper's Fig. 2 view; 1-based)")
    s.add_argument("--show", nargs="+", metavar="CLASS", help="with --question: the classes to draw (default: the first 12)")
    s.set_defaults(func=cmd_inspect)

    b = ss.add_parser("embed", help="a class-name embedding as a LaViD target (Table 5): MiniLM, BERT or an encoder")
    b.add_argument("--model", default="minilm", help="minilm (all-MiniLM-L6-v2, mean-pooled, normalised), bert "
                   "(bert-base-uncased, [CLS] as the authors' code), or an encoder folder / cached hub id")
    src = b.add_mutually_exclusive_group(required=True)
    src.add_argument("--classes", help="class list (JSON list or one name per line)")
    src.add_argument("--cfg", help="a training config whose dataset's (teacher) class names to embed")
    b.add_argument("--pooling", choices=["cls", "mean"], help="override the model's pooling")
    b.add_argument("--no-normalize", action="store_true", help="keep the raw vectors (bert's default)")
    b.add_argument("--device", default="cpu")
    b.add_argument("-o", "--output", required=True)
    b.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE", help="config overrides (with --cfg)")
    b.set_defaults(func=cmd_embed)

    r = ss.add_parser("prune", help="drop the lowest-entropy questions of a signature (Fig. 4)")
    r.add_argument("signature")
    r.add_argument("--drop-lowest-entropy", type=int, required=True, metavar="N")
    r.add_argument("--entropy", choices=["marginal", "mean"], default="mean",
                   help="mean (the paper's E_c[H(p_q^(c))]): of each class's own answers (confident questions); "
                        "marginal: of the class-averaged answer distribution (uninformative questions)")
    r.add_argument("-o", "--output", required=True)
    r.set_defaults(func=cmd_prune)


def _add_released(ss) -> None:
    from ..authors_release import DEFAULT_LLM, DEFAULT_QUESTIONS, add_source_arguments

    r = ss.add_parser("released", help="fetch the authors' released answers (pinned commit and checksums) and "
                      "import them: the paper's signature of a dataset in one command")
    r.add_argument("dataset", help="cub, caltech101, flowers, aircraft, pets, cars, waterbirds, or an ImageNet group "
                   "(bird, imagenet_bird); the authors' folder names (cub200, ...) work too")
    r.add_argument("--llm", default=DEFAULT_LLM, help=f"the answering LLM as the release names it (default "
                   f"{DEFAULT_LLM}; Fig. 5: qwen2.5-72B, llama3.1-8b, gemma3-27b, ...)")
    r.add_argument("--questions", default=DEFAULT_QUESTIONS, help=f"the question set (default {DEFAULT_QUESTIONS}: "
                   "GPT-4o, 50 questions x 5 options; chat_<Q>-<M>, gemini_70-5, chato3_50, ...)")
    r.add_argument("--file", metavar="STEM", help="any released answer file of the dataset by its name, in place of "
                   "--llm/--questions: e.g. minilm_384 or bert_768, the class-name embeddings of Table 5")
    r.add_argument("--list", action="store_true", help="list the dataset's released answer and question files")
    r.add_argument("--inputs-to", metavar="DIR", help="write the question file and the class list (for lavid "
                   "signature extract with your own LLM) into DIR instead of importing the answers")
    add_source_arguments(r)
    r.add_argument("-o", "--output", help="default: signatures/<dataset>/<llm>_<questions>.safetensors (where the "
                   "configs look)")
    r.set_defaults(func=cmd_released)


def _add_extract(ss) -> None:
    e = ss.add_parser("extract", help="answer every question for every class -> signature")
    e.add_argument("--model", required=True, help="causal LM (HF id or local path); with --backend embedding an encoder or 'minilm'")
    e.add_argument("--questions", required=True)
    e.add_argument("--classes", required=True)
    e.add_argument("-o", "--output", required=True, help="signature file (.safetensors)")
    e.add_argument("--backend", default="llm", help="answer backend, one of the registered: "
                   "llm (a causal LM's option-label logits), vllm (the same on a vLLM engine, pip install "
                   "'lavid-plugin[vllm]'), embedding (sentence-embedding similarity, no LLM)")
    e.add_argument("--batch-size", type=int, default=16)
    e.add_argument("--temperature", type=float, default=1.0)
    e.add_argument("--labels", choices=["number", "letter"], default="number")
    e.add_argument("--template", help="answer prompt with {label_kind} {question} {options}; default: the authors'")
    e.add_argument("--plain", action="store_true", help="no chat template (base models)")
    e.add_argument("--placeholder", action="append", help="extra placeholder phrase, e.g. 'the flower'")
    e.add_argument("--validation", choices=["strict", "lenient", "warn"], default="warn")
    e.add_argument("--cache-dir", help="answer shards for resuming (default: OUTPUT.cache/)")
    e.add_argument("--device")
    e.add_argument("--device-map", help="e.g. 'auto' for models larger than one GPU")
    e.add_argument("--tensor-parallel-size", type=int, default=1, help="--backend vllm: GPUs the model is split over")
    e.add_argument("--shard", metavar="I/N", help="answer only shard I of N (0-based) and write a shard file to -o; "
                   "join the N files with lavid signature merge")
    e.add_argument("--trust-remote-code", action="store_true")
    e.add_argument("--no-progress", action="store_true")
    e.set_defaults(func=cmd_extract)


def _read_inputs(args, with_classes=True):
    from ..signature.questions import Instantiator, parse_placeholder_specs, read_questions, validate_questions
    from ..signature.llm_signature import read_class_names

    qs, warns = read_questions(args.questions)
    for w in warns:
        _warn(w)
    names = read_class_names(args.classes) if with_classes and getattr(args, "classes", None) else []
    inst = Instantiator(parse_placeholder_specs(getattr(args, "placeholder", None)))
    report = validate_questions(qs, class_names=names, instantiator=inst, source=str(args.questions),
                                num_options=getattr(args, "num_options", None), allow_variable_m=True)
    return qs, names, inst, report


def cmd_questions(args) -> int:
    from ..hf import library_versions
    from ..signature.generate import HFChatBackend, OpenAIChatBackend, generate_questions, write_question_file
    from ..signature.prompts import generation_prompt
    from ..signature.llm_signature import read_class_names

    names = read_class_names(args.classes)
    if args.print_prompt:
        print(generation_prompt(names, args.num_questions, args.num_options, args.description, template=args.prompt))
        return 0
    if not args.output or not args.model:
        raise LavidError("--model and -o/--output are required (or use --print-prompt)")
    from ..hf import check_model_source
    from ..utils import check_output_path

    check_output_path(args.output)
    if args.backend == "hf":
        check_model_source(args.model, trust_remote_code=args.trust_remote_code)
    if args.backend == "openai":
        chat = OpenAIChatBackend(args.base_url, args.model, api_key_env=args.api_key_env, temperature=args.temperature)
    else:
        chat = HFChatBackend(args.model, temperature=args.temperature, trust_remote_code=args.trust_remote_code)
    qs = generate_questions(chat, names, args.num_questions, args.num_options, description=args.description,
                            max_rounds=args.max_rounds, log=_warn, template=args.prompt)
    prov = {"generator": chat.describe(), "prompt_template": args.prompt, "num_questions": args.num_questions,
            "num_options": args.num_options, "description": args.description, "temperature": args.temperature,
            "classes": str(args.classes), "library_versions": library_versions()}
    write_question_file(args.output, qs, prov)
    print(f"wrote {len(qs)} questions to {args.output}")
    return 0


def cmd_validate(args) -> int:
    qs, names, inst, report = _read_inputs(args)
    counts = sorted({q.num_options for q in qs})
    print(f"{args.questions}: {len(qs)} questions, option counts {counts}")
    print(report.format())
    return 1 if (args.strict and not report.ok) else 0


def answer_options(args):
    """``lavid signature extract``'s flags as the backends' typed options."""
    from ..signature.answerers import AnswerOptions

    return AnswerOptions(model=args.model, cache_dir=args.cache_dir or "", output=str(args.output), device=args.device,
                         device_map=args.device_map, batch_size=args.batch_size, template=args.template,
                         labels=args.labels, plain=args.plain, trust_remote_code=args.trust_remote_code,
                         progress=not args.no_progress, tensor_parallel_size=args.tensor_parallel_size,
                         embedding_scoring=getattr(args, "embedding_scoring", "statement"))


def cmd_extract(args) -> int:
    from ..hf import check_model_source
    from ..signature.answerers import build_signature, get_answerer, signature_provenance
    from ..utils import check_output_path
    from ..signature.generate import read_question_provenance
    from ..signature.questions import apply_validation
    from ..signature.shards import parse_shard, write_shard

    qs, names, inst, report = _read_inputs(args)
    if not names:
        raise LavidError("--classes is required")
    single = [i + 1 for i, q in enumerate(qs) if q.num_options < 2]
    if single:  # whatever --validation says: a 1-option question is a constant target, never an answer
        raise LavidError(f"{args.questions}: question(s) {single} have fewer than 2 options; remove them")
    qs = apply_validation(qs, report, args.validation, warn=_warn)
    backend = get_answerer(args.backend)  # before any model loads: a wrong name lists the registered ones
    check_output_path(args.output)
    if args.backend in ("llm", "vllm") or Path(args.model).exists():
        check_model_source(args.model, trust_remote_code=args.trust_remote_code)
    shard = parse_shard(args.shard) if args.shard else None
    if shard and not hasattr(backend, "answer_prompts"):
        raise LavidError(f"--shard needs a backend that answers prompt by prompt (llm), not {args.backend!r}")
    answerer, options = backend.from_options(answer_options(args), inst)
    out, question_prov = Path(args.output), read_question_provenance(args.questions)
    if shard:
        answers = answerer.answer_prompts(qs, names, shard=shard, **options)
        write_shard(out, answers, shard, qs, names,
                    signature_provenance(answerer, args.temperature, str(args.questions), question_prov))
        print(f"wrote {out}: shard {shard[0]}/{shard[1]}, {len(answers)} of {len(qs) * len(names)} answers "
              f"(join all shards with lavid signature merge)")
        return 0
    sig = build_signature(answerer, qs, names, temperature=args.temperature, question_source=str(args.questions),
                          question_provenance=question_prov, **options)
    sig.save(out)
    print(f"wrote {out}: K={sig.num_classes} Q={sig.num_questions} dim={sig.dim}")
    return 0


def cmd_import(args) -> int:
    from ..data.datasets import imagenet_group_classes
    from ..signature.questions import read_questions
    from ..signature.released import import_reference_json
    from ..signature.llm_signature import read_class_names
    from ..utils import check_output_path

    if args.output:
        check_output_path(args.output)
    qs = None
    if args.questions:
        qs, _ = read_questions(args.questions)
    names = read_class_names(args.classes) if args.classes else None
    aliases = None
    if args.imagenet_group:
        if names is not None:
            raise LavidError("give --classes or --imagenet-group, not both")
        names, aliases = imagenet_group_classes(args.imagenet_group, key="--imagenet-group")
    sig = import_reference_json(args.json, questions=qs, questions_source=args.questions,
                                             class_names=names, normalize=args.normalize_names,
                                             strict=args.strict, warn=lambda m: _warn(f"warning: {m}"),
                                             aliases=aliases)
    out = Path(args.output or Path(args.json).with_suffix(".safetensors").name)
    sig.save(out)
    print(f"wrote {out}: K={sig.num_classes} Q={sig.num_questions} dim={sig.dim}")
    return 0


def cmd_released(args) -> int:
    from .. import authors_release as rel
    from ..data.datasets import imagenet_group_classes
    from ..signature.questions import read_questions
    from ..signature.released import import_reference_json
    from ..utils import check_output_path

    ds = rel.dataset(args.dataset)
    if args.list:
        print(f"{ds.folder}: the authors' files at {rel.manifest()['repository']}@{rel.manifest()['commit'][:12]}")
        for path in rel.released_paths(ds.answers_dir, ".json") + rel.released_paths(ds.release_dir, ".txt"):
            if "_img." not in path:  # per-image banks: lavid teacher released
                print(f"  {path}")
        return 0
    src = rel.source_of(args)
    if args.inputs_to:  # the questions alone: for answers nobody released too (what --teacher extract answers)
        if args.file:
            raise LavidError("--file names an answer file; --inputs-to writes a question file: give one of them")
        return _released_inputs(args, rel, ds, rel.question_path(ds, args.questions), src)
    if args.file:
        stem = args.file.removesuffix(".json")
        if stem.endswith("_img"):
            raise LavidError(f"--file {args.file}: a per-image bank, not a per-class signature; import it with "
                             f"lavid teacher released {args.dataset}")
        answers, qfile = rel.find(ds.answers_dir, f"{stem}.json", "answer file"), None
    else:
        answers, qfile = rel.signature_paths(ds, args.llm, args.questions)
    out = Path(args.output or Path("signatures") / ds.signature_dir / f"{Path(answers).stem}.safetensors")
    check_output_path(out)
    apath, aprov = rel.fetch(answers, **src)
    qs, released = None, {"answers": aprov}
    if qfile:
        qpath, qprov = rel.fetch(qfile, **src)
        qs, _ = read_questions(qpath)
        released["questions"] = qprov
    elif not args.file:
        _warn(f"warning: {answers} was released without its question file; the signature carries no question texts")
    names, aliases = imagenet_group_classes(ds.group, key="DATASET") if ds.group else (None, None)
    sig = import_reference_json(apath, questions=qs, questions_source=qfile, class_names=names, aliases=aliases,
                                warn=lambda m: _warn(f"warning: {m}"))
    sig.provenance["released"] = released
    out.parent.mkdir(parents=True, exist_ok=True)
    sig.save(out)
    print(f"wrote {out}: K={sig.num_classes} Q={sig.num_questions} dim={sig.dim} from "
          f"{rel.manifest()['repository']}@{rel.manifest()['commit'][:12]} {answers}" + (f" + {qfile}" if qfile else ""))
    return 0


def _released_inputs(args, rel, ds, qfile, src) -> int:
    """``--inputs-to DIR``: the question file and the class list of a dataset, verified, for ``extract``."""
    from ..data.datasets import imagenet_group_classes
    from ..utils import atomic_write_json, atomic_write_text, check_output_path

    if not qfile:
        raise LavidError(f"the authors released no question file {args.questions}.txt for {ds.folder}")
    folder = Path(args.inputs_to)
    check_output_path(folder, "--inputs-to", folder=True)
    if ds.group:
        names = imagenet_group_classes(ds.group, key="DATASET")[0]
    else:
        classes = f"lavid/data/classes/{rel.DATASET_FOLDERS[ds.folder]}_classes.json"
        if classes not in rel.manifest()["files"]:
            raise LavidError(f"the authors released no class list for {ds.folder} ({classes})")
        names = json.loads(rel.fetch(classes, **src)[0].read_text())
    qpath = rel.fetch(qfile, **src)[0]
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / Path(qfile).name, qpath.read_text(encoding="utf-8"))
    atomic_write_json(folder / "classes.json", names)
    print(f"wrote {folder / Path(qfile).name} and {folder / 'classes.json'} ({len(names)} classes)")
    return 0


def cmd_merge(args) -> int:
    from ..utils import check_output_path
    from ..signature.shards import merge

    check_output_path(args.output)
    sig = merge(args.shards)
    sig.save(args.output)
    print(f"wrote {args.output}: K={sig.num_classes} Q={sig.num_questions} dim={sig.dim} from {len(args.shards)} shards")
    return 0


def cmd_inspect(args) -> int:
    from ..signature.inspection import heatmap_png, summary
    from ..signature.llm_signature import LLMSignature

    from ..utils import check_output_path

    if args.question is not None and not 1 <= args.question <= 10**6:
        raise LavidError(f"--question counts from 1 (as the summary numbers them), got {args.question}")
    if args.png:
        check_output_path(args.png, "--png")
    sig = LLMSignature.load(args.signature)
    if args.question is not None and args.question > sig.num_questions:
        raise LavidError(f"--question {args.question}: {args.signature} has {sig.num_questions} questions")
    print(summary(sig, args.k))
    if args.attributes:
        from ..signature.inspection import attribute_agreement, read_attributes

        hits, total = attribute_agreement(sig, read_attributes(args.attributes, sig))
        print(f"agreement with {args.attributes}: {hits}/{total} class x question pairs")
    if args.question is not None:
        from ..signature.inspection import question_png

        png = question_png(sig, args.question, args.png or Path(args.signature).with_name(
            f"{Path(args.signature).stem}_q{args.question}.png"), classes=args.show)
    else:
        png = heatmap_png(sig, args.png or Path(args.signature).with_suffix(".png"))
    print(f"heatmap: {png}")
    return 0


def cmd_embed(args) -> int:
    from ..utils import check_output_path
    from ..signature.class_embed import class_name_signature
    from ..signature.llm_signature import read_class_names

    check_output_path(args.output)
    if args.classes:
        names = read_class_names(args.classes)
    else:
        from ..config import load_cfg
        from ..data import build_splits

        splits = build_splits(load_cfg(args.cfg, args.opts))
        names = list(getattr(splits, "signature_classes", None) or splits.classes)
    sig = class_name_signature(names, args.model, pooling=args.pooling,
                               normalize=False if args.no_normalize else None, device=args.device)
    sig.save(args.output)
    print(f"wrote {args.output}: K={sig.num_classes} dim={sig.dim} ({args.model}, {sig.provenance['pooling']} pooling)")
    return 0


def cmd_prune(args) -> int:
    from ..utils import check_output_path
    from ..signature.class_embed import drop_lowest_entropy
    from ..signature.llm_signature import LLMSignature

    check_output_path(args.output)
    sig = drop_lowest_entropy(LLMSignature.load(args.signature), args.drop_lowest_entropy, entropy=args.entropy)
    sig.save(args.output)
    print(f"wrote {args.output}: Q={sig.num_questions} (dropped questions {sig.provenance['dropped_questions']})")
    return 0


def cmd_make_tiny_lm(args) -> int:
    from ..signature.questions import read_questions
    from ..signature.llm_signature import read_class_names
    from ..signature.tiny_lm import write_tiny_lm

    corpus = ["Answer only with the option number letter. No additional commentary."]
    if args.questions:
        corpus += [q.text + " " + " ".join(q.options) for q in read_questions(args.questions)[0]]
    if args.classes:
        corpus += read_class_names(args.classes)
    from ..utils import check_output_path

    check_output_path(args.output, folder=True)
    write_tiny_lm(args.output, corpus, vocab_size=args.vocab_size)
    print(f"wrote a tiny random-weight causal LM to {args.output}")
    return 0
