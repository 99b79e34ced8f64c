"""``recgym fit SIMULATOR``: fit a user simulator on logs.

Simulators: ``recsimu``, ``irecgan-user``, ``irecgan``, ``gan-user``, ``choice-continuation``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from recgym.cli.arguments import checkpoint_output, positive_int


def cmd_fit_recsimu(args: argparse.Namespace) -> None:
    """Fit RecSimu (Algorithm 1) and report F1 / AUC on each session's last tuple."""
    from recgym.core.distributed import is_main_process
    from recgym.simulators.recsimu.data import load_browsing_logs
    from recgym.simulators.recsimu.fit import RecSimuTraining, fit_recsimu
    from recgym.simulators.recsimu.model import RecSimuConfig

    logs, num_items = load_browsing_logs(args.data, args.root)
    training = RecSimuTraining(
        alpha=args.alpha, beta=args.beta, lam=args.lam, adversarial=not args.no_adversarial,
        generator_pretrain_epochs=args.pretrain_epochs,
        discriminator_pretrain_epochs=args.pretrain_epochs,
        adversarial_epochs=args.epochs, embedding_epochs=args.embedding_epochs, seed=args.seed)
    num_feedback = int(logs["feedback"].max()) + 1
    config = RecSimuConfig(num_items=num_items, num_feedback=max(num_feedback, 2),
                           state_length=args.state_length,
                           per_feedback_fake=not args.single_fake_class)
    result = fit_recsimu(logs, config=config, training=training, checkpoint=args.out,
                         resume=args.resume)
    split = result.split
    if not is_main_process():
        return
    print(f"fitted RecSimu on {len(split.train):,} tuples ({len(split.valid):,} validation, "
          f"{len(split.test):,} test); checkpoint: {args.out}")
    print(f"test (last tuple of each session): F1 {result.test.f1:.4f}  AUC {result.test.auc:.4f}")


def cmd_fit_irecgan_user(args: argparse.Namespace) -> None:
    """Fit IRecGAN's user model U by maximum likelihood (eq. 3) on a log or DIGINETICA."""
    from recgym.data import load_diginetica, load_logs
    from recgym.simulators.irecgan.fit import UserModelTraining, fit_user_model
    from recgym.simulators.irecgan.model import UserModelConfig
    from recgym.simulators.irecgan.sessions_data import diginetica_logs

    if args.data == "diginetica":
        if args.root is None:
            raise ValueError("--data diginetica needs --root FOLDER holding the DIGINETICA files")
        logs = diginetica_logs(load_diginetica(args.root), num_items=args.num_items,
                               list_size=args.list_size)
    else:
        logs = load_logs(args.data)
    config = UserModelConfig(num_items=logs.num_items, embedding_dim=args.embedding_dim,
                             hidden_size=args.hidden_size, num_layers=args.num_layers,
                             cell=args.cell)
    training = UserModelTraining(reward_weight=args.reward_weight, epochs=args.epochs,
                                 batch_size=args.batch_size, seed=args.seed)
    result = fit_user_model(logs, config=config, training=training, checkpoint=args.out,
                            resume=args.resume)
    best = max(result.history, key=lambda record: record["valid_log_likelihood"])
    print(f"fitted U on {args.data}: best held-out log-likelihood per page view "
          f"{best['valid_log_likelihood']:.4f} (epoch {best['epoch']}); checkpoint: {args.out}")


def cmd_fit_irecgan(args: argparse.Namespace) -> None:
    """Train IRecGAN from logs: U by MLE, A offline, then U, A and D adversarially.

    Every stage writes its files into ``--out-dir`` (atomically) as it finishes. The
    adversarial stage writes, after every epoch, one progress file with U, A, D, their
    optimizers and A's sampler state, so a killed run resumes from a consistent epoch, and
    U, A and D once at its end; ``--resume`` skips what is already there.
    """
    from agents.irecgan import AgentTraining, IRecGANAgent, IRecGANTraining
    from recgym.core.checkpoint import checkpoint_payload, load_checkpoint, save_checkpoint
    from recgym.data import load_logs
    from recgym.simulators.irecgan.discriminator import SequenceDiscriminator
    from recgym.simulators.irecgan.fit import SessionTensors, UserModelTraining, fit_user_model
    from recgym.simulators.irecgan.model import UserBehaviorModel, UserModelConfig

    logs = load_logs(args.data)
    sessions = SessionTensors.from_logs(logs)
    out = Path(args.out_dir)
    paths = {name: out / f"{name}.pt" for name in ("user", "agent", "discriminator")}
    sizes = {"embedding_dim": args.embedding_dim, "hidden_size": args.hidden_size,
             "num_layers": args.num_layers}

    def save(name: str, checkpoint: dict) -> None:
        save_checkpoint(paths[name], checkpoint)

    def load(name: str) -> dict | None:
        if not (args.resume and paths[name].exists()):
            return None
        return load_checkpoint(paths[name], f"irecgan-{name}",
                               rebuild="recgym fit irecgan (without --resume)")

    progress_path = out / "adversarial.progress.pt"
    progress = None
    if args.resume and progress_path.exists():
        progress = load_checkpoint(progress_path, "irecgan-progress",
                                   rebuild="recgym fit irecgan (without --resume)")
    saved_user, saved_agent = (progress["user"], progress["agent"]) if progress \
        else (load("user"), load("agent"))
    if saved_user is None:
        print("stage 1/3: user model U by maximum likelihood (eq. 3)")
        user = fit_user_model(logs, config=UserModelConfig(num_items=logs.num_items, **sizes),
                              training=UserModelTraining(epochs=args.user_epochs,
                                                         seed=args.seed)).model
        save("user", user.checkpoint())
    else:
        user = UserBehaviorModel.from_checkpoint(saved_user)
    if saved_agent is None:
        print("stage 2/3: agent A by REINFORCE on the offline sessions (eq. 9)")
        agent = IRecGANAgent(logs.num_items, sessions.slates.shape[-1], seed=args.seed, **sizes)
        agent.fit_offline(sessions, AgentTraining(epochs=args.agent_epochs, seed=args.seed))
        save("agent", agent.checkpoint())
    else:
        agent = IRecGANAgent.from_checkpoint(saved_agent)
    if progress:
        agent.generator.set_state(progress["agent_sampler"])
    saved_discriminator = progress["discriminator"] if progress else None
    if saved_discriminator is None:
        discriminator = SequenceDiscriminator(logs.num_items, seed=args.seed)
    else:
        discriminator = SequenceDiscriminator.from_checkpoint(saved_discriminator)
    optimizer_states = progress["optimizers"] if progress else None
    done = sum(1 for record in agent.history if "q_d" in record)
    checkpoints = None
    for epoch in range(done, args.epochs):
        print(f"stage 3/3: adversarial epoch {epoch + 1}/{args.epochs} (eq. 5-10)")
        agent.fit(sessions, user, discriminator,
                  IRecGANTraining(epochs=1, n_rollouts=args.rollouts, seed=args.seed + epoch),
                  optimizer_states=optimizer_states)
        optimizer_states = agent.optimizer_states
        checkpoints = {"user": user.checkpoint(), "agent": agent.checkpoint(),
                       "discriminator": discriminator.checkpoint()}
        save_checkpoint(progress_path, checkpoint_payload(
            "irecgan-progress", {"epoch": epoch + 1}, {}, optimizers=optimizer_states,
            agent_sampler=agent.generator.get_state(), **checkpoints))
    for name, checkpoint in (checkpoints or {}).items():  # the progress file has each epoch's
        save(name, checkpoint)
    print(f"IRecGAN trained: {', '.join(str(p) for p in paths.values())}")


def cmd_fit_gan_user(args: argparse.Namespace) -> None:
    """Fit the GAN user model (entropy or L2) with the paper's split; print a fidelity table."""
    import numpy as np

    from recgym.core.checkpoint import save_checkpoint
    from recgym.data import gan_user_model_split
    from recgym.simulators.gan_user.baselines import (
        BASELINE_NAMES,
        BASELINES,
        baseline_precision,
    )
    from recgym.simulators.gan_user.fit import (
        GANUserTraining,
        PageViews,
        default_features,
        env_checkpoint,
        fit_gan_user,
        page_view_dataset,
    )
    from recgym.simulators.gan_user.model import GANUserConfig

    dataset = page_view_dataset(args.data, root=args.root, seed=args.seed,
                                max_sessions=args.max_sessions)
    split = gan_user_model_split(dataset.logs, seed=args.seed)
    views = {name: PageViews.from_logs(part, history=args.history)
             for name, part in (("train", split.train), ("valid", split.val),
                                ("test", split.test))}
    features = default_features(dataset, views["train"], with_year=args.with_year,
                                popularity=not args.no_popularity,
                                cooccurrence=args.cooccurrence)
    config = GANUserConfig(feature_dim=features.shape[1], history=args.history,
                           state=args.state, hidden=args.hidden)
    training = GANUserTraining(epochs=args.epochs, seed=args.seed, regularizer=args.regularizer,
                               adversarial_epochs=args.adversarial_epochs)
    progress_file = Path(args.out).with_suffix(".fit.pt")
    fit = fit_gan_user(views["train"], views["valid"], features, config=config,
                       training=training, test=views["test"], checkpoint=progress_file,
                       resume=args.resume)
    save_checkpoint(args.out, env_checkpoint(fit, features, views["test"], seed=args.seed))
    name = f"GAN-{args.state.upper()} ({args.regularizer})"
    rows = [(name, fit.test_precision)]
    rows += [(BASELINE_NAMES[baseline], baseline_precision(baseline, views["train"],
                                                           views["test"], features,
                                                           seed=args.seed))
             for baseline in BASELINES]
    shown = views["train"].display.shape[1]
    print(f"fitted {name} on {len(views['train']):,} page views "
          f"({len(np.unique(views['train'].user)):,} users); checkpoint: {args.out} "
          f"(training progress: {progress_file})")
    print(f"fidelity on {len(views['test']):,} test page views ({shown} items shown; chance "
          f"Prec@1 {1 / shown:.3f}, Prec@2 {2 / shown:.3f}):")
    width = max(len(row[0]) for row in rows)
    print(f"  {'model':<{width}}  Prec@1  Prec@2")
    for label, precision in rows:
        print(f"  {label:<{width}}  {precision[1]:.4f}  {precision[2]:.4f}")


def cmd_fit_choice_continuation(args: argparse.Namespace) -> None:
    """Fit the choice-continuation users on a slate log; report held-out log-likelihood."""
    import numpy as np

    from recgym.data import load_logs
    from recgym.data.slates import outcomes, sorted_logs
    from recgym.fidelity.history import held_out_sessions
    from recgym.fidelity.metrics import outcome_log_likelihood
    from recgym.simulators.choice_continuation import (
        ChoiceContinuationConfig,
        fit_choice_continuation,
    )

    config = ChoiceContinuationConfig(
        num_latent=args.num_latent, prior_scale=args.prior_scale, max_iter=args.max_iter,
        item_continuation=not args.no_item_continuation, logging_model=args.logging_model)
    dataset = load_logs(args.data)
    logs = sorted_logs(dataset.logs)
    held = held_out_sessions(logs, args.held_out, seed=args.seed) if args.held_out > 0 \
        else np.zeros(len(logs), bool)
    train, test = logs[~held].reset_index(drop=True), logs[held].reset_index(drop=True)
    slate_size = len(train["slate"].iloc[0])
    users = fit_choice_continuation(train, dataset.num_items, slate_size,
                                    history_length=args.history, seed=args.seed,
                                    config=config, progress=True)
    users.save(args.out, config.to_dict())
    print(f"fitted choice-continuation users on {train.session_id.nunique():,} sessions "
          f"({len(train):,} page views); checkpoint: {args.out}")
    if len(test):
        log_likelihood = outcome_log_likelihood(users.page_view_probabilities(test),
                                                outcomes(test)).mean()
        print(f"held-out ({test.session_id.nunique():,} sessions): log-likelihood per page "
              f"view {log_likelihood:.4f} (uniform over the "
              f"{slate_size + 1} outcomes: {-np.log(slate_size + 1):.4f})")


def add_fit_commands(subparsers: Any) -> None:
    """Add ``fit`` and its one subcommand per simulator to the ``recgym`` parser."""
    fit = subparsers.add_parser("fit", help="fit a user simulator on logs")
    simulators = fit.add_subparsers(dest="simulator", required=True)
    recsimu = simulators.add_parser("recsimu", help="RecSimu (Zhao et al. 2020), Algorithm 1")
    recsimu.add_argument("--data", required=True,
                         help="log file (Parquet/CSV), MovieLens name (ml-latest-small, "
                              "ml-100k, ...) or diginetica / yoochoose")
    recsimu.add_argument("--root", help="folder holding the dataset's files")
    recsimu.add_argument("--out", default="recsimu.pt", help="checkpoint file")
    recsimu.add_argument("--resume", action="store_true", help="continue from --out")
    recsimu.add_argument("--state-length", type=int, default=20, help="N")
    recsimu.add_argument("--epochs", type=int, default=10, help="adversarial epochs")
    recsimu.add_argument("--pretrain-epochs", type=int, default=5)
    recsimu.add_argument("--embedding-epochs", type=int, default=5)
    recsimu.add_argument("--alpha", type=float, default=1.0)
    recsimu.add_argument("--beta", type=float, default=1.0)
    recsimu.add_argument("--lam", type=float, default=0.3)
    recsimu.add_argument("--no-adversarial", action="store_true", help="RecSimu-3")
    recsimu.add_argument("--single-fake-class", action="store_true", help="RecSimu-1")
    recsimu.add_argument("--seed", type=int, default=0)
    recsimu.set_defaults(func=cmd_fit_recsimu)

    user = simulators.add_parser("irecgan-user",
                                 help="IRecGAN's user model U (Bai et al. 2019), eq. 3")
    user.add_argument("--data", required=True,
                      help="log file (Parquet / CSV, log schema) or diginetica")
    user.add_argument("--root", help="folder holding the DIGINETICA files (--data diginetica)")
    user.add_argument("--num-items", type=int, default=2000,
                      help="DIGINETICA: keep the most viewed items")
    user.add_argument("--list-size", type=int, default=10,
                      help="DIGINETICA: items per list (the clicked one and others shown then)")
    user.add_argument("--out", default="irecgan-user.pt", help="checkpoint file")
    user.add_argument("--resume", action="store_true", help="continue from --out")
    user.add_argument("--embedding-dim", type=int, default=50)
    user.add_argument("--hidden-size", type=int, default=512)
    user.add_argument("--num-layers", type=int, default=2)
    user.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    user.add_argument("--reward-weight", type=float, default=1.0, help="lambda_p")
    user.add_argument("--epochs", type=int, default=10)
    user.add_argument("--batch-size", type=int, default=64)
    user.add_argument("--seed", type=int, default=0)
    user.set_defaults(func=cmd_fit_irecgan_user)

    irecgan = simulators.add_parser("irecgan", help="IRecGAN (Bai et al. 2019): U, A and D "
                                                     "trained together from logs")
    irecgan.add_argument("--data", required=True, help="log file (Parquet / CSV, log schema)")
    irecgan.add_argument("--out-dir", default="runs/irecgan",
                         help="folder for user.pt, agent.pt and discriminator.pt")
    irecgan.add_argument("--resume", action="store_true",
                         help="continue from the files already in --out-dir")
    irecgan.add_argument("--embedding-dim", type=int, default=50)
    irecgan.add_argument("--hidden-size", type=int, default=512)
    irecgan.add_argument("--num-layers", type=int, default=2)
    irecgan.add_argument("--user-epochs", type=int, default=10)
    irecgan.add_argument("--agent-epochs", type=int, default=10)
    irecgan.add_argument("--epochs", type=int, default=5, help="adversarial epochs")
    irecgan.add_argument("--rollouts", type=int, default=8, help="N of eq. 6")
    irecgan.add_argument("--seed", type=int, default=0)
    irecgan.set_defaults(func=cmd_fit_irecgan)

    gan = simulators.add_parser("gan-user", help="GAN user model (Chen et al. 2019): Shannon "
                                                 "entropy (maximum likelihood) or L2 mini-max")
    gan.add_argument("--data", required=True,
                     help="MovieLens name (ml-latest-small, ml-100k, ...), a session log "
                          "(yoochoose, diginetica; needs --root) or a log file with an item table")
    gan.add_argument("--root", help="folder holding the dataset's files")
    gan.add_argument("--max-sessions", type=int, help="random subset of a session log's sessions")
    gan.add_argument("--out", default="gan-user.pt", help="checkpoint file")
    gan.add_argument("--state", choices=("pw", "lstm"), default="pw")
    gan.add_argument("--regularizer", choices=("entropy", "l2"), default="entropy",
                     help="R(phi): entropy (maximum likelihood) or l2 (the mini-max game of "
                          "eq. 5, started from the entropy solution)")
    gan.add_argument("--history", type=int, default=10, help="m, clicks in the state")
    gan.add_argument("--hidden", type=int, default=256, help="reward network width")
    gan.add_argument("--epochs", type=int, default=20, help="entropy (maximum-likelihood) epochs")
    gan.add_argument("--adversarial-epochs", type=int, default=10, help="L2 game epochs")
    gan.add_argument("--resume", action="store_true",
                     help="continue from the training progress saved beside --out (.fit.pt)")
    gan.add_argument("--no-popularity", action="store_true",
                     help="leave out the items' log click count among training page views")
    gan.add_argument("--cooccurrence", action="store_true",
                     help="append co-occurrence embeddings of the training clicks to an item "
                          "table's features (session logs always use them)")
    gan.add_argument("--with-year", action="store_true",
                     help="add the release year to the features (it leaks how MovieLens "
                          "display sets are built; see recgym.simulators.gan_user.fit)")
    gan.add_argument("--seed", type=int, default=0)
    gan.set_defaults(func=cmd_fit_gan_user)

    latent = simulators.add_parser(
        "choice-continuation",
        help="latent-state choice + continuation users (fidelity's best kind on random logs)",
        description="Fit the choice-continuation users (recgym.simulators.choice_continuation) "
                    "on a slate log by maximum a-posteriori; the checkpoint is scored by "
                    "`recgym fidelity --simulator FILE.pt` and rolled out by "
                    "`recgym ope --estimators sim`.")
    latent.add_argument("--data", required=True, help="log file (Parquet / CSV, log schema)")
    latent.add_argument("--out", type=checkpoint_output, default="choice-continuation.pt",
                        help="checkpoint file (.pt)")
    latent.add_argument("--num-latent", type=positive_int, default=10, help="latent states K")
    latent.add_argument("--prior-scale", type=float, default=2.0,
                        help="standard deviation of the Gaussian prior")
    latent.add_argument("--max-iter", type=positive_int, default=300, help="L-BFGS iterations")
    latent.add_argument("--no-item-continuation", action="store_true",
                        help="no per-item term in the continuation model")
    latent.add_argument("--logging-model", action="store_true",
                        help="also model which items the logger shows in each latent state "
                             "(for logs of a logger that read the user's state)")
    latent.add_argument("--history", type=positive_int, default=10,
                        help="clicks in the users' observation")
    latent.add_argument("--held-out", type=float, default=0.1,
                        help="share of sessions held out for the reported log-likelihood "
                             "(0: fit on all)")
    latent.add_argument("--seed", type=int, default=0, help="anchor draw and held-out split")
    latent.set_defaults(func=cmd_fit_choice_continuation)
