"""Run the simulation sweeps for the three claims of the solvable KD model of "Solvable Model
for Inheriting the Regularization through Knowledge Distillation" (arXiv:2012.00194).

Writes, under ``--out`` (default ``outputs/theory``):

* ``claim1_lambda_teacher.csv`` / ``claim1_summary.csv`` / ``claim1_lambda_teacher.png`` --
  teacher and pure-KD student error against the teacher's L2 strength at ``alpha = 4.5``;
* ``table_alpha4.5.md`` -- those errors at the four reference ``lam_teacher`` beside the
  reference values (:data:`REFERENCE_ALPHA45`);
* ``claim2_bayes_teacher.csv`` / ``claim2_summary.csv`` / ``claim2_bayes_teacher.png`` -- KD from
  the Bayes-optimal teacher against the sparse bound and tuned baselines, against ``alpha``;
* ``claim3_double_descent.csv`` / ``claim3_summary.csv`` / ``claim3_double_descent.png`` --
  teacher and student errors against ``alpha`` (regularised / unregularised / label-smoothed
  teachers, several temperatures);
* ``replica_teacher.csv`` / ``replica_teacher.png`` -- replica-symmetric prediction for the
  teacher's overlaps against the simulation (``--only replica`` or the default run);
* ``run.json`` -- per invocation, the arguments and the time each part took.

Every error is the closed-form ``eps_g(m, q, b)``. Example: ``python tools/theory/run_claims.py``
(N = 1000, a few minutes on one core) or ``--quick`` (N = 200, seconds).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from kd_det.theory.data import MixtureModel  # noqa: E402
from kd_det.theory.sweeps import (  # noqa: E402
    TeacherSpec,
    aggregate,
    best_over_lam,
    sweep_alpha,
    sweep_bayes_teacher,
    sweep_teacher_regularisation,
)

#: Reference simulation of claim 1 that this reproduction is checked against: N = 1000,
#: alpha = 4.5, (teacher error, pure-KD student error) per lam_teacher.
REFERENCE_ALPHA45 = {
    1e-5: (0.200, 0.192),
    1e-2: (0.171, 0.189),
    0.1: (0.147, 0.182),
    1.0: (0.161, 0.184),
}

CLAIM1_LAMS = [1e-5, 1e-4, 1e-3, 1e-2, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]
CLAIM2_ALPHAS = [0.5, 1.0, 1.5, 2.0, 3.0, 4.5, 6.0]
CLAIM3_ALPHAS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0,
                 3.5, 4.0, 4.5, 5.0, 6.0]  # fmt: skip
CLAIM3_TEACHERS = [
    TeacherSpec("unregularised (lam~=1e-5)", 1e-5),
    TeacherSpec("regularised (lam~=0.1)", 0.1),
    TeacherSpec("label smoothing 0.2 (lam~=1e-5)", 1e-5, 0.2),
]
TEMPERATURES = [1.0, 2.0, 4.0]
REPLICA_ALPHAS = [0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0]
REPLICA_LAMS = [1e-2, 0.1, 1.0]


def _log(msg: str) -> None:
    print(msg, flush=True)


def write_csv(path: Path, rows: Sequence[dict]) -> None:
    """Write ``rows`` (dicts with the same keys) as CSV."""
    if not rows:
        raise ValueError(f"no rows to write to {path}")
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0].keys()))
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def _band(ax, x, mean, sem, **kw) -> None:
    line = ax.plot(x, mean, marker="o", ms=3, **kw)[0]
    ax.fill_between(x, [m - s for m, s in zip(mean, sem)], [m + s for m, s in zip(mean, sem)],
                    color=line.get_color(), alpha=0.2, lw=0)  # fmt: skip


def _nz(x: float) -> float:
    return 0.0 if math.isnan(x) else x


def run_claim1(model: MixtureModel, seeds: list[int], eta: float, out: Path) -> list[dict]:
    """Claim 1 sweep, CSVs, figure and the alpha = 4.5 table."""
    lams = sorted(set(CLAIM1_LAMS) | set(REFERENCE_ALPHA45))
    rows = sweep_teacher_regularisation(model, 4.5, lams, seeds, eta=eta, progress=_log)
    write_csv(out / "claim1_lambda_teacher.csv", rows)
    summ = aggregate(rows, ["lam_teacher"], ["teacher_err", "student_err"])
    write_csv(out / "claim1_summary.csv", summ)

    x = [r["lam_teacher"] for r in summ]
    fig, ax = plt.subplots(figsize=(6, 4))
    _band(ax, x, [r["teacher_err_mean"] for r in summ], [_nz(r["teacher_err_sem"]) for r in summ],
          label="teacher (dense, L2 logistic)")  # fmt: skip
    _band(ax, x, [r["student_err_mean"] for r in summ], [_nz(r["student_err_sem"]) for r in summ],
          label=f"KD student (eta={eta}, chi=1, lam=1e-5, T=1)")  # fmt: skip
    rl = sorted(REFERENCE_ALPHA45)
    ax.plot(
        rl,
        [REFERENCE_ALPHA45[k][0] for k in rl],
        "kx",
        ms=8,
        label="reference teacher",
    )
    ax.plot(rl, [REFERENCE_ALPHA45[k][1] for k in rl], "k+", ms=10, label="reference student")
    ax.set_xscale("log")
    ax.set_xlabel("teacher regularisation lam~")
    ax.set_ylabel("test error eps_g")
    ax.set_title(
        f"Claim 1: inherited regularisation (N={model.n}, alpha=4.5, {len(seeds)} seeds)",
        fontsize=9,
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "claim1_lambda_teacher.png", dpi=110)
    plt.close(fig)

    by_lam = {r["lam_teacher"]: r for r in summ}
    lines = [
        f"N = {model.n}, alpha = 4.5, eta = {eta}, Delta = {model.delta}, rho = {model.rho}, "
        f"{len(seeds)} seeds (mean +- s.e.m.); student chi = 1, lam = 1e-5, T = 1.",
        "",
        "| lam~ | teacher (ours) | teacher (ref) | KD student (ours) | KD student (ref) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for lam in rl:
        r = by_lam[lam]
        t_ref, s_ref = REFERENCE_ALPHA45[lam]
        lines.append(
            f"| {lam:g} | {r['teacher_err_mean']:.3f} +- {_nz(r['teacher_err_sem']):.3f} | {t_ref:.3f} "
            f"| {r['student_err_mean']:.3f} +- {_nz(r['student_err_sem']):.3f} | {s_ref:.3f} |"
        )
    best_t = min(summ, key=lambda r: r["teacher_err_mean"])
    best_s = min(summ, key=lambda r: r["student_err_mean"])
    lines += [
        "",
        f"Best teacher lam~ on the grid {lams}: {best_t['lam_teacher']:g} "
        f"(error {best_t['teacher_err_mean']:.3f}); best for the student: "
        f"{best_s['lam_teacher']:g} (error {best_s['student_err_mean']:.3f}).",
    ]
    (out / "table_alpha4.5.md").write_text("\n".join(lines) + "\n")
    _log("\n".join(lines))
    return summ


def run_claim2(model: MixtureModel, seeds: list[int], eta: float, out: Path, alphas) -> list[dict]:
    """Claim 2 sweep, CSVs and figure."""
    rows = sweep_bayes_teacher(model, alphas, seeds, eta=eta, progress=_log)
    write_csv(out / "claim2_bayes_teacher.csv", rows)
    summ = aggregate(rows, ["alpha", "method", "lam"], ["err"])
    write_csv(out / "claim2_summary.csv", summ)

    def series(method: str, lam: float | None = None):
        if lam is None:
            best = best_over_lam(summ, method)
            rs = list(best.values())
        else:
            rs = [r for r in summ if r["method"] == method and (math.isnan(lam) or r["lam"] == lam)]
            rs.sort(key=lambda r: r["alpha"])
        return (
            [r["alpha"] for r in rs],
            [r["err_mean"] for r in rs],
            [_nz(r["err_sem"]) for r in rs],
        )

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    xb, bound, _ = series("bayes_sparse", math.nan)
    for label, (method, lam), style in [
        ("Bayes-optimal teacher (dense)", ("bayes_dense", math.nan), dict(color="k", ls=":")),
        ("sparse Bayes-optimal bound", ("bayes_sparse", math.nan), dict(color="k", ls="-")),
        ("KD from Bayes teacher, lam=1e-5", ("kd_bayes", 1e-5), dict(color="C0")),
        ("KD from Bayes teacher, lam tuned", ("kd_bayes", None), dict(color="C0", ls="--")),
        ("KD from L2 teacher (lam~=0.1), lam=1e-5", ("kd_l2_teacher", 1e-5), dict(color="C2")),
        ("logistic on labels, lam tuned", ("logistic_l2", None), dict(color="C3", ls="--")),
        ("ridge regression on labels, lam tuned", ("ridge", None), dict(color="C1", ls="--")),
    ]:
        x, m, s = series(method, lam)
        _band(ax, x, m, s, label=label, **style)
        if method not in ("bayes_dense", "bayes_sparse"):
            ax2.plot(
                x, [mi - bi for mi, bi in zip(m, bound)], marker="o", ms=3, label=label, **style
            )
    ax.set_ylim(0.11, 0.25)
    ax.set_xlabel("alpha = M / N")
    ax.set_ylabel("test error eps_g")
    ax.set_title(
        f"Claim 2: limited by the teacher (N={model.n}, eta={eta}, {len(seeds)} seeds)", fontsize=9
    )
    ax.legend(fontsize=7)
    ax2.axhline(0.0, color="k", lw=0.8)
    ax2.set_yscale("symlog", linthresh=1e-3)
    ax2.set_ylim(-1e-3, 0.3)
    ax2.set_xlabel("alpha = M / N")
    ax2.set_ylabel("excess error over the sparse Bayes-optimal bound")
    ax2.set_title("same data, minus the sparse bound (symlog)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "claim2_bayes_teacher.png", dpi=110)
    plt.close(fig)
    return summ


def run_claim3(model: MixtureModel, seeds: list[int], eta: float, out: Path, alphas) -> list[dict]:
    """Claim 3 sweep, CSVs and figure."""
    rows = sweep_alpha(model, alphas, seeds, CLAIM3_TEACHERS, TEMPERATURES, eta=eta, progress=_log)
    write_csv(out / "claim3_double_descent.csv", rows)
    summ = aggregate(rows, ["teacher", "role", "temperature", "alpha"], ["err"])
    write_csv(out / "claim3_summary.csv", summ)

    fig, axes = plt.subplots(1, len(CLAIM3_TEACHERS), figsize=(13, 4), sharey=True)
    for ax, spec in zip(axes, CLAIM3_TEACHERS):
        mine = [r for r in summ if r["teacher"] == spec.name]
        t = sorted((r for r in mine if r["role"] == "teacher"), key=lambda r: r["alpha"])
        _band(ax, [r["alpha"] for r in t], [r["err_mean"] for r in t], [_nz(r["err_sem"]) for r in t],
              color="k", label="teacher")  # fmt: skip
        for i, temp in enumerate(TEMPERATURES):
            s = sorted((r for r in mine if r["role"] == "student" and r["temperature"] == temp),
                       key=lambda r: r["alpha"])  # fmt: skip
            _band(ax, [r["alpha"] for r in s], [r["err_mean"] for r in s], [_nz(r["err_sem"]) for r in s],
                  color=f"C{i}", label=f"KD student T={temp:g}")  # fmt: skip
        ax.axvline(eta, color="grey", ls="--", lw=0.8)
        ax.text(eta, 0.47, " alpha=eta", fontsize=7, color="grey")
        ax.set_title(f"teacher: {spec.name}", fontsize=9)
        ax.set_xlabel("alpha = M / N")
        ax.set_ylim(0.12, 0.5)
    axes[0].set_ylabel("test error eps_g")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Claim 3: double descent (N={model.n}, eta={eta}, chi=1, student lam=1e-5, "
                 f"{len(seeds)} seeds)", fontsize=10)  # fmt: skip
    fig.tight_layout()
    fig.savefig(out / "claim3_double_descent.png", dpi=100)
    plt.close(fig)
    return summ


def run_replica(model: MixtureModel, seeds: list[int], out: Path, alphas, lams) -> list[dict]:
    """Replica-symmetric teacher overlaps against simulation: CSV and figure."""
    from kd_det.theory.replica import compare_teacher_with_simulation

    rows = compare_teacher_with_simulation(model, alphas, lams, seeds, progress=_log)
    write_csv(out / "replica_teacher.csv", rows)
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.6))
    for ax, key in zip(axes, ["m", "q", "b", "err"]):
        for i, lam in enumerate(lams):
            rs = sorted((r for r in rows if r["lam_teacher"] == lam), key=lambda r: r["alpha"])
            a = [r["alpha"] for r in rs]
            ax.plot(
                a, [r[f"theory_{key}"] for r in rs], color=f"C{i}", label=f"RS theory lam~={lam:g}"
            )
            ax.errorbar(a, [r[f"sim_{key}_mean"] for r in rs], yerr=[_nz(r[f"sim_{key}_sem"]) for r in rs],
                        fmt="o", ms=3, color=f"C{i}", label=f"simulation N={model.n}")  # fmt: skip
        ax.set_xlabel("alpha")
        ax.set_title(
            {"m": "m = w.v/N", "q": "q = |w|^2/N", "b": "bias b", "err": "test error"}[key]
        )
    axes[1].set_yscale("log")
    axes[1].legend(fontsize=6, loc="lower right", ncol=2)
    fig.suptitle("Teacher (L2 logistic): replica-symmetric fixed point vs simulation", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "replica_teacher.png", dpi=100)
    plt.close(fig)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("outputs/theory"), help="output folder")
    p.add_argument("--quick", action="store_true", help="tiny run: N=200, 2 seeds, coarse grids")
    p.add_argument(
        "--n", type=int, default=None, help="dimension N (default 1000; 200 with --quick)"
    )
    p.add_argument(
        "--seeds", type=int, default=None, help="seeds per setting (default 4; 2 with --quick)"
    )
    p.add_argument("--eta", type=float, default=0.5, help="student's trainable fraction")
    p.add_argument("--delta", type=float, default=1.0, help="noise variance Delta")
    p.add_argument("--rho", type=float, default=0.2, help="P(y = 1)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--only", nargs="+", choices=["claim1", "claim2", "claim3", "replica"],
                   default=["claim1", "claim2", "claim3", "replica"], help="parts to run")  # fmt: skip
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    n = args.n or (200 if args.quick else 1000)
    n_seeds = args.seeds or (2 if args.quick else 4)
    seeds = list(range(n_seeds))
    model = MixtureModel(n=n, delta=args.delta, rho=args.rho)
    a2 = [1.0, 3.0, 6.0] if args.quick else CLAIM2_ALPHAS
    a3 = [0.25, 0.5, 0.75, 1.25, 1.75, 2.5, 4.0] if args.quick else CLAIM3_ALPHAS
    ar = [1.0, 3.0, 6.0] if args.quick else REPLICA_ALPHAS
    args.out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    _log(f"N={n}, seeds={seeds}, eta={args.eta}, out={args.out}")
    for part in args.only:
        t0 = time.perf_counter()
        _log(f"== {part} ==")
        if part == "claim1":
            run_claim1(model, seeds, args.eta, args.out)
        elif part == "claim2":
            run_claim2(model, seeds, args.eta, args.out, a2)
        elif part == "claim3":
            run_claim3(model, seeds, args.eta, args.out, a3)
        else:
            run_replica(model, seeds, args.out, ar, REPLICA_LAMS)
        timings[part] = round(time.perf_counter() - t0, 1)
        _log(f"== {part} done in {timings[part]}s ==")
    meta = {"argv": sys.argv[1:] if argv is None else list(argv), "n": n, "seeds": seeds,
            "eta": args.eta, "delta": args.delta, "rho": args.rho, "seconds": timings}  # fmt: skip
    # one entry per invocation, so partial re-runs (--only) keep the record of earlier parts
    log_path = args.out / "run.json"
    history = json.loads(log_path.read_text()) if log_path.exists() else []
    history.append(meta)
    log_path.write_text(json.dumps(history, indent=2) + "\n")
    _log(f"wrote {args.out}/ ({timings})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
