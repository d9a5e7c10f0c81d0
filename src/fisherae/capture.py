"""A whole training step (forward, the inner gradients of eq. 10, backward, Adam) recorded
once into a CUDA graph and replayed: one launch a step instead of hundreds.

The step is a function of tensors only (the batch and its noise draws, drawn outside the
graph) that returns one tensor (the step's loss terms and gradient norms). The graph is for the
input shapes of the first call (a full batch): the first ``warmup`` calls of those shapes run
eagerly on a side stream, as CUDA graph capture requires; the next one is captured and replayed;
later ones copy their inputs into the graph's static buffers and replay it. Calls of other
shapes (an epoch's last, smaller batch) run eagerly, before the capture as after it, and count
for none of this. Where capture fails, the step runs eagerly from then on and ``mode`` says why."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)

MODES = ("auto", "eager", "cuda_graph")


class GraphedStep:
    """``step(*inputs) -> Tensor``, eager or replayed from a CUDA graph (``mode``)."""

    def __init__(self, step: Callable[..., torch.Tensor], device: torch.device, mode: str = "auto",
                 warmup: int = 3):
        if mode not in MODES:
            raise ValueError(f"unknown step mode {mode!r}: expected one of {MODES}")
        if mode == "cuda_graph" and device.type != "cuda":
            raise ValueError(f"step mode 'cuda_graph' needs a CUDA device, got {device}")
        self.step, self.device, self.warmup = step, device, warmup
        self.capture = mode != "eager" and device.type == "cuda"
        self.required = mode == "cuda_graph"
        self.mode = "cuda_graph (after warm-up)" if self.capture else "eager"
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_inputs: tuple[torch.Tensor, ...] = ()
        self.static_output: torch.Tensor | None = None
        self.shapes: tuple[torch.Size, ...] | None = None  # the graph's input shapes: the first call's
        self.warm_calls = 0  # calls of those shapes before the capture

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        shapes = tuple(x.shape for x in inputs)
        if self.shapes is None:
            self.shapes = shapes
        fits = shapes == self.shapes
        if self.graph is not None and fits:
            for static, value in zip(self.static_inputs, inputs):
                static.copy_(value)
            self.graph.replay()
            return self.static_output
        if not self.capture or self.graph is not None or not fits:  # eager mode, or a batch of another shape
            return self.step(*inputs)
        self.warm_calls += 1
        if self.warm_calls <= self.warmup:
            return self._warm_up(inputs)
        return self._capture(inputs)

    def _warm_up(self, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        side = torch.cuda.Stream(self.device)  # warm-up before capture runs on a side stream
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            out = self.step(*inputs)
        torch.cuda.current_stream(self.device).wait_stream(side)
        return out

    def _capture(self, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        static_inputs = tuple(x.clone() for x in inputs)
        graph = torch.cuda.CUDAGraph()
        gc.collect()  # no garbage collection during capture: freeing another graph there invalidates it
        gc.disable()
        try:
            with torch.cuda.graph(graph):
                static_output = self.step(*static_inputs)
        except Exception as err:  # noqa: BLE001 - any capture failure falls back to the eager step
            if self.required:
                raise
            self.capture, self.mode = False, f"eager (CUDA graph capture failed: {type(err).__name__}: {err})"
            log.warning("training step: %s", self.mode)
            torch.cuda.synchronize(self.device)
            return self.step(*inputs)
        finally:
            gc.enable()
        self.graph, self.static_inputs, self.static_output = graph, static_inputs, static_output
        self.mode = "cuda_graph"
        graph.replay()
        return static_output
