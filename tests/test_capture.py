"""The training step: eager on the CPU equals the plain loss-backward-Adam step, reads no value back
to the host and differentiates into the data only for its inner gradient; with torch.cuda's
graph API stood in on the CPU, the graph is captured for full batches only and a failed capture
runs eagerly and says why; on a GPU (skipped without one) the CUDA-graph step equals the eager
step, runs no fallback convolution kernel, a run resumes across the two modes, and the epoch's
log line names the arithmetic and the peak memory."""

import contextlib
import copy
import re

import pytest
import torch
from torch import nn

from fisherae import convolutions
from fisherae.capture import GraphedStep
from fisherae.config import validate_config
from fisherae.devices import use_tf32
from fisherae.losses import fisher_ae_loss, vae_loss, wae_adversary_loss, wae_autoencoder_loss, wae_encode
from fisherae.models import ModelSpec
from fisherae.training import TrainingStep, _load_optimiser, train

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

def _config(**training):
    return validate_config({"seeds": [0], "datasets": {"mnist": {"source": "embedded", "n_train": 200, "width": 4}},
                            "models": {"fisher": {"method": "fisher_ae", "prior": "polynomial"}},
                            "training": training})


SETTINGS = _config(lr=1e-3)["training"]
EXTRA = {"fisher_ae": {"n_samples": 2, "decoder_var": 1.0, "fisher_variant": "exact"},
         "vae": {"n_samples": 1, "decoder_var": 1.0},
         "wae_gan": {"wae_lambda": 10.0, "stochastic_encoder": True}}
PRIOR = {"fisher_ae": "polynomial", "vae": "gaussian", "wae_gan": "gaussian"}


def _training_step(method, device, mode, width=4, seed=0):
    torch.manual_seed(seed)
    spec = ModelSpec(method, "mnist", PRIOR[method], 3, width, 4, True, EXTRA[method])
    step = TrainingStep(spec, {**SETTINGS, "step_mode": mode}, torch.device(device))
    step.generator.manual_seed(seed)
    return step


def _batches(device, sizes=(16, 16, 16, 16, 16, 16, 9, 16), seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [torch.rand(n, 1, 28, 28, generator=gen).to(device) for n in sizes]


def _plain_step(step, x, noise):
    """The step written out: loss, backward, Adam, with the same draws."""
    model, extra = step.model, step.model.spec.extra
    optimisers = step.optimisers
    if model.spec.method == "wae_gan":
        z_prior, eps = noise
        z = wae_encode(model.encoder, x, True, eps=eps)
        optimisers["adversary"].zero_grad()
        wae_adversary_loss(model.adversary, z_prior, z).backward()
        optimisers["adversary"].step()
        optimisers["autoencoder"].zero_grad()
        wae_autoencoder_loss(model.decoder, model.adversary, x, z, extra["wae_lambda"]).loss.backward(
            inputs=[p for p in optimisers["autoencoder"].param_groups[0]["params"]])
        optimisers["autoencoder"].step()
        return
    loss = (fisher_ae_loss(model.encoder, model.decoder, model.prior, x, eps=noise[0])
            if model.spec.method == "fisher_ae" else vae_loss(model.encoder, model.decoder, model.prior, x,
                                                            eps=noise[0])).loss
    optimisers["autoencoder"].zero_grad()
    loss.backward()
    optimisers["autoencoder"].step()


@pytest.mark.parametrize("method", ["fisher_ae", "vae", "wae_gan"])
def test_the_eager_step_is_the_plain_step(method):
    ours, plain = _training_step(method, "cpu", "eager"), _training_step(method, "cpu", "eager")
    for x in _batches("cpu", sizes=(8, 8, 5)):
        row = ours(x)
        _plain_step(plain, x, plain._draw(len(x)))
    assert len(row) == len(ours.names) and torch.isfinite(row).all()
    assert [n for n in ours.names if not n.startswith("grad ")][0] == "loss"
    for (name, a), b in zip(ours.model.state_dict().items(), plain.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)


def test_the_backward_into_the_parameters_computes_no_data_gradient(monkeypatch):
    """A Fisher step differentiates the encoder's first layer into the data for the stability
    term's inner gradient (once per draw of z); the outer backward into the parameters never."""
    into_data, phase = [], ["loss"]
    real_run, real_backward = convolutions.Geometry.run, torch.Tensor.backward

    def run(geometry, x, weight, bias=None):
        y = real_run(geometry, x, weight, bias)
        if geometry.transposed and y.shape[1:] == (1, 28, 28):  # the encoder's first layer's adjoint
            into_data.append(phase[0])
        return y

    def backward(tensor, *args, **kwargs):
        phase[0] = "backward"
        return real_backward(tensor, *args, **kwargs)

    monkeypatch.setattr(convolutions.Geometry, "run", run)
    monkeypatch.setattr(torch.Tensor, "backward", backward)
    step = _training_step("fisher_ae", "cpu", "eager")
    step(_batches("cpu", sizes=(8,))[0])
    assert into_data == ["loss"] * EXTRA["fisher_ae"]["n_samples"], into_data


@pytest.mark.parametrize("method", ["fisher_ae", "vae", "wae_gan"])
def test_a_step_reads_no_value_back_to_the_host(method, host_syncs_refused):
    """On a GPU each of these would wait for the device (a host sync, and no CUDA graph): the step
    leaves its loss terms and gradient norms on the device for the ledger to check every 50 batches."""
    step = _training_step(method, "cpu", "eager")
    first, second = _batches("cpu", sizes=(8, 8))
    step(first)  # the first step sets up what it keeps (Adam's state)
    with host_syncs_refused("the training step"):
        row = step(second)
    assert row.shape == (len(step.names),) and torch.isfinite(row).all()


SYNCS = {  # what the refusal names: a sync of that kind
    "Tensor.item": lambda x: x.sum().item(), "Tensor.__bool__": lambda x: bool(x.sum() > 0),
    "Tensor.tolist": lambda x: x.tolist(), "aten.index.Tensor": lambda x: x[x > 0],
    "aten.index_put_": lambda x: x.clone().index_put_((x > 0,), torch.tensor(1.0)),
    "aten.nonzero": lambda x: torch.nonzero(x), "aten.masked_select": lambda x: x.masked_select(x > 0),
    "aten._unique2": lambda x: x.unique(), "aten.equal": lambda x: torch.equal(x, x),
    "aten.repeat_interleave.Tensor": lambda x: x.repeat_interleave(x.long().abs()[:, 0], dim=0),
    "aten._to_copy": lambda x: x.to("meta")}


@pytest.mark.parametrize("sync", SYNCS)
def test_host_syncs_refused_catches_each_kind(sync, host_syncs_refused):
    """The fixture the no-host-sync tests use refuses each kind of sync, and lets the ops a step
    uses through (their results unchanged)."""
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    with host_syncs_refused("this"), pytest.raises(AssertionError, match=f"^this (called|ran) {re.escape(sync)}"):
        SYNCS[sync](x)
    with host_syncs_refused("this"):
        kept = (x.sort(dim=1).values, x.kthvalue(2, dim=1).values, torch.where(x > 0, x, 0.0).sum(),
                x.index_select(0, torch.tensor([2, 0])), x.repeat_interleave(2, dim=0, output_size=8), x.clone())
    torch.testing.assert_close(kept[0], x.sort(dim=1).values)
    assert kept[4].shape == (8, 3)


def test_step_modes_are_checked():
    with pytest.raises(ValueError, match="unknown step mode 'fast'"):
        GraphedStep(lambda x: x, torch.device("cpu"), "fast")
    with pytest.raises(ValueError, match="'cuda_graph' needs a CUDA device"):
        GraphedStep(lambda x: x, torch.device("cpu"), "cuda_graph")
    step = GraphedStep(lambda x: 2 * x, torch.device("cpu"), "auto")
    assert step.mode == "eager" and torch.equal(step(torch.ones(2)), 2 * torch.ones(2))


class _FakeCuda:
    """torch.cuda's stream and graph API stood in on the CPU: what ``GraphedStep`` does with it is
    recorded in ``events`` (warm-ups on the side stream, captures, replays)."""

    def __init__(self, monkeypatch, capture_error=None):
        self.events, self.stream_depth, self.capture_error = [], 0, capture_error
        fake = self

        class Stream:
            def __init__(self, *args, **kwargs):
                pass

            def wait_stream(self, other):
                pass

        class Graph:
            def replay(self):
                fake.events.append(("replay",))

        @contextlib.contextmanager
        def stream(side):
            fake.stream_depth += 1
            yield
            fake.stream_depth -= 1

        @contextlib.contextmanager
        def graph(g):
            if fake.capture_error:
                raise fake.capture_error
            fake.events.append(("capture",))
            yield

        for name, value in {"Stream": Stream, "current_stream": lambda *a, **k: Stream(), "stream": stream,
                            "CUDAGraph": Graph, "graph": graph, "synchronize": lambda *a, **k: None}.items():
            monkeypatch.setattr(torch.cuda, name, value)

    def step(self, x):
        self.events.append(("side stream" if self.stream_depth else "step", len(x)))
        return 2 * x


@pytest.mark.parametrize("epoch", [(32, 8), (32, 32, 32, 8), (32,)])
def test_the_graph_is_captured_for_full_batches_only(monkeypatch, epoch):
    """The capture follows three warm-ups of the first call's shape whatever the epoch's length:
    the smaller last batch neither counts as a warm-up nor is captured, and runs eagerly."""
    fake = _FakeCuda(monkeypatch)
    graphed = GraphedStep(fake.step, torch.device("cuda"), "auto", warmup=3)
    calls = [n for _ in range(5) for n in epoch]
    for n in calls:
        assert torch.equal(graphed(torch.ones(n)), 2 * torch.ones(n))
    full, partial = len(calls) - calls.count(8), calls.count(8)
    # the capture records the step once, then replays it: every full batch from the fourth replays
    assert [event for event in fake.events if event[-1:] != (8,)] == (
        [("side stream", 32)] * 3 + [("capture",), ("step", 32)] + [("replay",)] * (full - 3)), fake.events
    assert [event for event in fake.events if event[-1:] == (8,)] == [("step", 8)] * partial
    assert graphed.mode == "cuda_graph" and graphed.static_inputs[0].shape == (32,)


def test_a_failed_capture_runs_eagerly_and_says_why(monkeypatch, caplog):
    fake = _FakeCuda(monkeypatch, capture_error=RuntimeError("operation not permitted when stream is capturing"))
    graphed = GraphedStep(fake.step, torch.device("cuda"), "auto", warmup=1)
    with caplog.at_level("WARNING", logger="fisherae.capture"):
        outs = [graphed(torch.ones(4)) for _ in range(4)]
    assert all(torch.equal(out, 2 * torch.ones(4)) for out in outs)
    assert fake.events == [("side stream", 4)] + [("step", 4)] * 3 and graphed.graph is None
    reason = "CUDA graph capture failed: RuntimeError: operation not permitted when stream is capturing"
    assert graphed.mode == f"eager ({reason})" and reason in caplog.text
    strict = GraphedStep(fake.step, torch.device("cuda"), "cuda_graph", warmup=1)
    strict(torch.ones(4))
    with pytest.raises(RuntimeError, match="operation not permitted"):
        strict(torch.ones(4))


# --- on a GPU ----------------------------------------------------------------------------------

@cuda
@pytest.mark.parametrize("method", ["fisher_ae", "vae", "wae_gan"])
def test_the_cuda_graph_step_equals_the_eager_step(method):
    """Step by step from the same state and draws: 3 warm-up steps, the capture, replays, a
    smaller batch (eager), a replay. (Whole trajectories drift apart from the rounding of one
    step, as float training runs do; one step must agree to rounding.)"""
    use_tf32(True)  # training's default arithmetic (conftest restores the flags)
    graph, eager = _training_step(method, "cuda", "cuda_graph"), _training_step(method, "cuda", "eager")
    for x in _batches("cuda"):
        eager.model.load_state_dict(graph.model.state_dict())
        for name, optimiser in eager.optimisers.items():
            _load_optimiser(optimiser, copy.deepcopy(graph.optimisers[name].state_dict()), capturable=True)
        rows = graph(x).clone(), eager(x).clone()
        torch.testing.assert_close(rows[0], rows[1], rtol=1e-4, atol=1e-5)
        for (name, a), b in zip(graph.model.state_dict().items(), eager.model.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert graph.graph.mode == "cuda_graph" and graph.graph.graph is not None


def _cuda_kernels(step, x):
    from torch.profiler import ProfilerActivity, profile

    step(x), step(x)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step(x)
        torch.cuda.synchronize()
    return {event.name for event in prof.events()}


@cuda
@pytest.mark.parametrize("dataset", ["mnist", "celeba"])
def test_no_fallback_kernel_in_a_fisher_step_on_the_gpu(dataset, monkeypatch):
    def fallback_kernels():
        torch.manual_seed(0)
        spec = ModelSpec("fisher_ae", dataset, "polynomial", None, 8, 5, False, EXTRA["fisher_ae"])
        step = TrainingStep(spec, {**SETTINGS, "step_mode": "eager"}, torch.device("cuda"))
        shape = (1, 28, 28) if dataset == "mnist" else (3, 64, 64)
        kernels = _cuda_kernels(step, torch.rand(16, *shape, device="cuda"))
        return sorted(k for k in kernels if "im2col" in k or "col2im" in k or "slow_conv" in k or "vol2col" in k)

    assert fallback_kernels() == []
    monkeypatch.setattr(convolutions.Conv2d, "forward", nn.Conv2d.forward)
    monkeypatch.setattr(convolutions.ConvTranspose2d, "forward", nn.ConvTranspose2d.forward)
    if dataset == "celeba":  # the transposed convolutions with output padding: the native double backward falls back
        assert fallback_kernels() != []


@cuda
def test_a_run_resumes_across_step_modes(tmp_path):
    config = _config(epochs=1, batch_size=32, step_mode="eager")
    train(config, "mnist", "fisher", 0, tmp_path, "cuda", progress=False)
    resumed = copy.deepcopy(config)
    resumed["training"].update(epochs=2, step_mode="auto")
    train(resumed, "mnist", "fisher", 0, tmp_path, "cuda", progress=False)
    log = (tmp_path / "train.log").read_text().splitlines()
    assert "step: eager" in log[0] and "step: cuda_graph" in log[1], log
    assert all(re.search(r"float32 products: TF32, peak GPU memory \d+ MiB$", line) for line in log), log
