"""One check of the real-GPU path on a machine with one GPU, dry-run only (< 4 min).

It never changes a clock, a power limit or any other setting: clocks go through the runtime's
dry-run backend, which only logs the switches it would make.

    python bench/gpu_check.py            # on a GPU machine
    python bench/gpu_check.py --fake     # the same logic on the fake GPU (CPU, used by CI)

Checks, then one summary table and the last line ``gpu_check=ok`` or ``gpu_check=failed <why>``:
1. launches: the CUPTI launch hook's count over three training steps (the sequence must repeat),
   and against torch.profiler's (taken last: Kineto keeps CUPTI once it subscribed)
   (on --fake, against the op-level trace the fake GPU launches from);
2. predicted mode: gearshift.compile in the training loop records the step, partitions it,
   measures the default clock until the energy counter's error is <= 1 %, predicts the other
   clocks and plans (labelled "predicted"), then enforces in dry-run;
3. enforcement latency: a dry-run schedule alternating two clocks at every partition boundary;
   boundary -> switch-call latency (median, p99) from the runtime's switch events;
4. hook cost: step time without the hook, recording, and counting against a dry-run schedule;
5. energy counter: NVML total-energy reads during steps, and the update period they show.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import traceback

MAX_PROFILE_STEPS = 3000


def tiny_gpt(device: str):
    import torch

    from gearshift.trace import zoo

    torch.manual_seed(0)
    cfg = zoo.GPTConfig(layers=2, hidden=128, heads=4, seq=64, batch=4, vocab=512,
                        dtype="float32")
    return zoo.GPT(cfg).to(device)


class Step:
    """One training step of the tiny GPT (forward, loss, backward, AdamW)."""

    def __init__(self, model, device: str):
        import torch

        self.model, self.torch = model, torch
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        self.idx = torch.randint(0, 512, (4, 64), device=device)

    def __call__(self, model=None):
        m = model or self.model
        logits = m(self.idx)
        loss = self.torch.nn.functional.cross_entropy(logits.flatten(0, 1), self.idx.flatten())
        loss.backward()
        self.opt.step()
        self.opt.zero_grad()
        if self.torch.cuda.is_available():
            self.torch.cuda.synchronize()
        return loss


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q / 100 * (len(v) - 1))))] if v else None


def run(fake: bool, preset: str, save_trace: str | None = None, hf: bool = False
        ) -> tuple[list[tuple[str, str, str]], list[str]]:
    import torch

    import gearshift
    from gearshift.runtime import Session

    rows: list[tuple[str, str, str]] = []
    failed: list[str] = []
    if fake:
        os.environ["GEARSHIFT_FAKE_GPU_LOCK"] = "0"       # no clock permission: dry-run
        from gearshift.devices.fake_gpu import FakeGpuDevice
        dev = FakeGpuDevice(preset, may_lock_clocks=False)
        torch_device, spec = "cpu", "fake-gpu"
        torch.set_num_threads(1)
    else:
        if not torch.cuda.is_available():
            return rows, ["no CUDA GPU visible to torch (run on a GPU machine, or --fake)"]
        from gearshift.devices import open_device
        dev = open_device("dry-run")
        torch_device, spec = "cuda", "dry-run"
    rows.append(("device", dev.name, "clocks never changed (dry-run)"))
    if fake:
        rows.append(("NVML", f"fake libnvidia-ml {os.path.basename(dev.nvml_path)}",
                     "energy read through nvml_query (pynvml), as on a GPU"))
    model = tiny_gpt(torch_device)
    step = Step(model, torch_device)
    for _ in range(3):
        step()                                              # warm-up, optimizer state

    state: dict = {"n_cupti": 0, "trace": None, "schedule": None}
    from gearshift._native import library_status
    libs = {lib: library_status(lib) for lib in ("cuda", "nvml", "cupti")}

    def check(name, fn):
        # one check's crash is reported and the others still run: a GPU lease is short
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - the check reports, it does not crash
            traceback.print_exc(file=sys.stderr)
            first = str(exc).splitlines()[0] if str(exc) else ""
            failed.append(f"{name}: {type(exc).__name__}: {first}")

    rows.append(("libraries", ", ".join(
        f"{lib} {'ok' if st['loaded'] else 'missing'}" for lib, st in libs.items()),
        "; ".join(f"{lib}: {st.get('path') or st.get('error', '')}" for lib, st in libs.items())))

    # 1. launches per step (three steps: the sequence the runtime enforces must repeat);
    #    torch.profiler's count is taken last (check 6): once Kineto has subscribed to CUPTI it
    #    keeps CUPTI's one subscriber slot until the process ends
    def _check1():
        if fake:
            from gearshift.trace import trace_step
            dev.attach(trace_step(model, step.idx))
        s = Session(mode="record", **dev.session_options()).start()
        try:
            for _ in range(3):
                s.step()
                step()
                if fake:
                    dev.play_step(s)
            per_step = [[r.name for r in s.records(i)] for i in (1, 2, 3)]
            cupti_ok, cupti_error = s.cupti_active, s.cupti_error
        finally:
            s.close()
        n_cupti = state["n_cupti"] = len(per_step[-1])
        same = per_step[1] == per_step[2]
        rows.append(("launches/step", f"CUPTI hook {[len(p) for p in per_step]} over 3 steps",
                     ("hook subscribed" if cupti_ok else f"hook NOT subscribed: {cupti_error}")
                     + ("; steps 2 and 3 launch the same sequence" if same else
                        "; steps 2 and 3 DIFFER")))
        if not cupti_ok or n_cupti == 0:
            failed.append("the CUPTI launch hook recorded nothing"
                          + (f" ({cupti_error})" if cupti_error else ""))
        elif not same:
            failed.append("the launch sequence changes from step to step")

    check('launches', _check1)

    # 2. the training-loop path in predicted mode
    def _check2():
        t0 = time.perf_counter()
        g = gearshift.compile(tiny_gpt(torch_device), device=spec, progress=False,
                              objective="max-slowdown=1.1", freq_step_mhz=240)
        gstep = Step(g, torch_device)
        for _ in range(MAX_PROFILE_STEPS):
            gstep(g)
            st = g.gearshift.status()
            if st["phase"] in ("fallback",) or (st["phase"] == "enforce" and
                                               st["steps_by_phase"]["enforce"] >= 5):
                break
        st = g.gearshift.status()
        spo = list((st.get("steps_per_option") or {}).values())
        rows.append(("profile effort", f"{st['options_measured']}/{st['options_total']} options "
                     f"measured, steps per option median {statistics.median(spo) if spo else 0}"
                     f", max {max(spo) if spo else 0}",
                     "energy counter updates, not steps, bound each option's error"))
        rows.append(("predicted plan", f"phase {st['phase']}, steps {st['steps_by_phase']}",
                     f"saving {st['planned_energy_saving_pct'] or 0:.1f} % ({st['saving_label']})"
                     f" in {time.perf_counter() - t0:.0f} s"))
        if st["phase"] != "enforce" or st["mode"] != "predicted":
            failed.append(f"predicted-mode path ended in {st['phase']} "
                          f"({st.get('fallback_reason') or 'profile did not converge'})")
        online = g.gearshift.online
        state["trace"] = online.trace if online is not None else None
        g.gearshift.close()
        if save_trace and state["trace"] is not None:
            state["trace"].save(save_trace)      # the recorded launch sequence, for offline study

    check('predicted-mode', _check2)

    # 3. dry-run enforcement latency: two clocks alternating at every boundary
    def _check3():
        trace = state["trace"]
        if trace is None:
            failed.append("switch-latency: no recorded trace (the predicted-mode check failed)")
        else:
            from gearshift.model import Partitioning, Schedule
            from gearshift.model.schedule import ScheduleEntry
            clocks = sorted(dev.facts.supported_freqs_mhz, reverse=True)[:2]
            n = len(trace)
            cuts = sorted({int(i * n / 8) for i in range(8)})
            parts = Partitioning.from_cuts(trace, cuts)
            sched = Schedule([ScheduleEntry(p.index, p.start, clocks[p.index % 2],
                                            signature=p.signature) for p in parts.partitions],
                             trace.signature(), dev.facts.name, n, objective="gpu_check")
            state["schedule"] = sched
            s = Session(sched, trace=trace, **dev.session_options()).start()
            try:
                for _ in range(20):
                    s.step()
                    step()
                    if fake:
                        dev.play_step(s, sched)
                events = [e for e in s.switch_events() if e.action == "switched"]
            finally:
                s.close()
            lat = [e.latency_us for e in events if e.latency_us is not None]
            what = "boundary -> switch call"
            if not lat:   # a real GPU does not time the boundary itself: detection -> call
                lat = [(e.call_ns - e.detect_ns) / 1e3 for e in events if e.call_ns and e.detect_ns]
                what = "boundary seen -> switch call"
            if lat:
                rows.append(("switch latency", f"median {statistics.median(lat):.1f} us, "
                             f"p99 {pct(lat, 99):.1f} us", f"{what}, {len(lat)} dry-run switches"))
            else:
                failed.append("no dry-run switch events were recorded")

    check('switch-latency', _check3)

    # 4. hook cost: step time without the hook, with it recording (record mode) and with it
    #    counting launches against a schedule (apply mode, dry-run switches at 8 boundaries:
    #    what runs during training); blocks of the three interleaved so drift hits all alike
    def _check4():
        if fake:
            rows.append(("hook cost", "n/a on the fake GPU", "launches are replayed, not timed"))
            return
        sched = state["schedule"]

        def block(kind, k=10):
            s = None
            if kind == "record":
                s = Session(mode="record", **dev.session_options()).start()
            elif kind == "apply":
                s = Session(sched, trace=state["trace"], **dev.session_options()).start()
            try:
                if s is not None and not s.cupti_active:
                    raise RuntimeError(f"the launch hook is not subscribed ({s.cupti_error})")
                out = []
                for _ in range(k):
                    if s is not None and kind == "apply":
                        s.step()
                    t = time.perf_counter()
                    step()
                    out.append(time.perf_counter() - t)
                return out
            finally:
                if s is not None:
                    s.close()

        kinds = ["plain", "record"] + (["apply"] if sched is not None else [])
        times: dict = {k: [] for k in kinds}
        for _ in range(6):
            for k in kinds:
                times[k] += block(k)
        med = {k: statistics.median(v) for k, v in times.items()}
        n = max(state["n_cupti"], 1)
        for k in kinds[1:]:
            per = (med[k] - med["plain"]) / n * 1e6
            rows.append((f"hook cost ({k})", f"step {med['plain'] * 1e3:.2f} -> {med[k] * 1e3:.2f} ms"
                         f" (x{med[k] / med['plain']:.3f})",
                         f"{per:+.2f} us per launch, median of {len(times[k])} steps"))

    check('hook-cost', _check4)

    # 5. energy counter reads during steps
    def _check5():
        reads = []
        s = Session(mode="record", **dev.session_options()).start() if fake else None
        try:
            for _ in range(100 if fake else 30):   # fake steps last < 1 ms of device time
                t = time.perf_counter()
                if s is not None:
                    s.step()
                step()
                if fake:
                    dev.play_step(s)          # the fake GPU runs the step: its counter integrates
                reads.append((time.perf_counter() - t, dev.energy_counter_mj()))
        finally:
            if s is not None:
                s.close()
        changes = sum(1 for a, b in zip(reads, reads[1:]) if b[1] != a[1])
        note = f"last {reads[-1][1]} mJ"
        if not fake:
            # the counter's update period and step: poll it every ~0.2 ms for 1 s of steps
            ups, t_end, last = [], time.perf_counter() + 1.0, dev.energy_counter_mj()
            while time.perf_counter() < t_end:
                model(step.idx).sum().backward()           # keep the GPU busy, no sync
                for _ in range(20):
                    v = dev.energy_counter_mj()
                    if v != last:
                        ups.append((time.perf_counter(), v - last))
                        last = v
                    time.sleep(0.0002)
            torch.cuda.synchronize()
            step.opt.zero_grad()
            if len(ups) >= 3:
                gaps = [b[0] - a[0] for a, b in zip(ups, ups[1:])]
                note += (f"; update period median {statistics.median(gaps) * 1e3:.1f} ms, "
                         f"step median {statistics.median([u[1] for u in ups]):.0f} mJ "
                         f"({len(ups)} updates in 1 s)")
        rows.append(("energy counter", f"{len(reads)} reads, {changes} updates seen", note))
        if changes == 0:
            failed.append(f"the NVML energy counter did not change over {len(reads)} steps")

    check('energy-counter', _check5)

    # 7 (--hf). a Hugging Face Llama (built from a config: no download) through all phases in
    #    predicted mode; its losses must equal eager's, step for step
    def _check7():
        import copy

        import transformers

        cfg = transformers.LlamaConfig(hidden_size=256, intermediate_size=704, num_hidden_layers=2,
                                       num_attention_heads=4, num_key_value_heads=2,
                                       vocab_size=1024, max_position_embeddings=128)
        torch.manual_seed(0)
        model = transformers.LlamaForCausalLM(cfg).to(torch_device)
        eager = copy.deepcopy(model)
        g = gearshift.compile(model, device=spec, progress=False, loss_fn=lambda out: out.loss,
                              objective="max-slowdown=1.1", freq_step_mhz=240)

        def loop(m, steps=None, until=None):
            gen = torch.Generator().manual_seed(2)
            opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
            out = []
            for _ in range(steps or MAX_PROFILE_STEPS):
                ids = torch.randint(0, 1024, (4, 128), generator=gen).to(torch_device)
                loss = m(input_ids=ids, labels=ids).loss
                loss.backward()
                opt.step()
                opt.zero_grad()
                out.append(loss.item())
                if until is not None and until(m.gearshift.status()):
                    break
            return out

        t0 = time.perf_counter()
        losses = loop(g, until=lambda st: st["phase"] == "fallback" or (
            st["phase"] == "enforce" and st["steps_by_phase"]["enforce"] >= 5))
        st = g.gearshift.status()
        g.gearshift.close()
        ref = loop(eager, steps=len(losses))
        # a GPU's attention backward may add in a different order run to run: equal up to that
        worst = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(losses, ref))
        same = worst <= 1e-4
        rows.append(("hf llama", f"phase {st['phase']}, steps {st['steps_by_phase']}",
                     f"saving {st['planned_energy_saving_pct'] or 0:.1f} % ({st['saving_label']}), "
                     f"losses {'equal' if same else 'DIFFER from'} eager's (max rel. {worst:.1e}), "
                     f"{time.perf_counter() - t0:.0f} s"))
        if st["phase"] != "enforce":
            failed.append(f"hf llama ended in {st['phase']} ({st.get('fallback_reason')})")
        if not same:
            failed.append("hf llama: losses differ from eager's")

    if hf:
        check('hf-llama', _check7)

    # 6. the reference count of launches per step (last: see check 1)
    def _check6():
        n_cupti = state["n_cupti"]
        if fake:
            n_ref, ref = len(dev.op_trace), "op-level trace"
        else:
            from torch.profiler import ProfilerActivity, profile
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                step()
            n_ref = sum(1 for e in prof.events() if getattr(e.device_type, "name", "") == "CUDA")
            ref = "torch.profiler"
        rows.append(("launches vs ref", f"CUPTI hook {n_cupti}, {ref} {n_ref}",
                     "one training step each"))
        if n_cupti and abs(n_cupti - n_ref) > 0.05 * max(n_ref, 1):
            failed.append(f"CUPTI counts {n_cupti} launches, {ref} {n_ref}")

    check('launches-vs-reference', _check6)

    return rows, failed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fake", action="store_true", help="run on the fake GPU (CPU, for CI)")
    ap.add_argument("--preset", default="h100-sxm", help="the fake GPU's preset")
    ap.add_argument("--hf", action="store_true",
                    help="also train a small Hugging Face Llama through every phase")
    ap.add_argument("--save-trace", metavar="PATH",
                    help="save the kernel trace the predicted-mode check recorded (KernelTrace JSON)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    saved = os.environ.get("GEARSHIFT_FAKE_GPU_LOCK")
    try:
        rows, failed = run(args.fake, args.preset, args.save_trace, args.hf)
    except Exception as exc:  # noqa: BLE001 - the check reports, it does not crash
        rows, failed = [], [f"{type(exc).__name__}: {exc}".splitlines()[0]]
    finally:
        if saved is None:
            os.environ.pop("GEARSHIFT_FAKE_GPU_LOCK", None)
        else:
            os.environ["GEARSHIFT_FAKE_GPU_LOCK"] = saved
    width = max([len(r[0]) for r in rows] + [10])
    print(f"{'check':<{width}}  result  |  note")
    for name, result, note in rows:
        print(f"{name:<{width}}  {result}  |  {note}")
    print(f"{'time':<{width}}  {time.perf_counter() - t0:.0f} s")
    print("gpu_check=ok" if not failed else "gpu_check=failed " + "; ".join(failed))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
