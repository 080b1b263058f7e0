"""``FastCarRacing``: gymnasium's CarRacing with the same pixels, rendered about 2.5x faster.

The stock renderer rotates ~1,000 polygons vertex by vertex with ``Vector2.rotate_rad`` and renders
the score font every frame. Here all vertices of a frame are transformed and culled in one batch of
float64 NumPy operations repeating pygame's arithmetic operation by operation (so pygame draws the same
doubles in the same order); static geometry, score texts and surfaces are kept; and frames that frame
skipping never observes are not drawn (:meth:`FastCarRacing.skip_next_observation`). Frames are
bit-identical to the stock env's; where :func:`fast_renderer_usable` says no, gymnasium's code renders.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import pygame
from gymnasium.envs.box2d import car_dynamics
from gymnasium.envs.box2d.car_racing import (
    GRASS_DIM,
    MAX_SHAPE_DIM,
    PLAYFIELD,
    SCALE,
    STATE_H,
    STATE_W,
    VIDEO_H,
    VIDEO_W,
    WINDOW_H,
    WINDOW_W,
    ZOOM,
    CarRacing,
)
from numpy.typing import NDArray
from pygame import gfxdraw

from relic_rl.environments.renderer import (
    VERIFIED_GYMNASIUM,
    fast_render_supported,
    fast_renderer_usable,
    rotate,
    rotation,
)

__all__ = [
    "VERIFIED_GYMNASIUM",
    "FastCarRacing",
    "fast_render_supported",
    "fast_renderer_usable",
    "rotate",
    "rotation",
    "to_screen",
]

_CULL_LOW = -MAX_SHAPE_DIM
_CULL_HIGH_X = WINDOW_W + MAX_SHAPE_DIM
_CULL_HIGH_Y = WINDOW_H + MAX_SHAPE_DIM


def to_screen(
    points: NDArray[np.float64], angle: float, zoom: float, translation: tuple[float, float]
) -> NDArray[np.float64]:
    """World ``(..., 2)`` points to window coordinates as the stock renderer computes them."""
    out = rotate(points, angle)
    out *= zoom
    out += translation
    return out


def _static_polygons() -> NDArray[np.float64]:
    """The playfield and the 400 grass patches, in the stock drawing order, as ``(401, 4, 2)``."""
    b, g = PLAYFIELD, GRASS_DIM
    grass = [
        [(g * x + g, g * y + 0), (g * x + 0, g * y + 0), (g * x + 0, g * y + g), (g * x + g, g * y + g)]
        for x in range(-20, 20, 2)
        for y in range(-20, 20, 2)
    ]
    return np.array([[(b, b), (b, -b), (-b, -b), (-b, b)], *grass], dtype=np.float64)


_STATIC_POLYGONS = _static_polygons()
_N_STATIC = len(_STATIC_POLYGONS)


@functools.lru_cache(maxsize=256)
def _score_text(text: str) -> pygame.Surface:
    """The score ``text`` as the stock renderer draws it, kept per process (the stock one renders it
    every frame). No font is kept, so ``pygame.quit()`` between frames cannot leave a stale one."""
    font = pygame.font.Font(pygame.font.get_default_font(), 42)
    return font.render(text, True, (255, 255, 255), (0, 0, 0))


class FastCarRacing(CarRacing):
    """gymnasium's ``CarRacing`` with a faster, pixel-identical renderer (same arguments and behaviour).

    ``self.surf`` is reused from frame to frame; :attr:`fast_render` tells whether the fast renderer is
    in use (else gymnasium's, see :func:`fast_renderer_usable`).
    """

    # Declared here because the stock constructor sets them to None (mypy would infer None).
    surf: Any
    clock: Any

    def __init__(
        self,
        render_mode: str | None = None,
        verbose: bool = False,
        lap_complete_percent: float = 0.95,
        domain_randomize: bool = False,
        continuous: bool = True,
    ) -> None:
        super().__init__(
            render_mode=render_mode,
            verbose=verbose,
            lap_complete_percent=lap_complete_percent,
            domain_randomize=domain_randomize,
            continuous=continuous,
        )
        self.fast_render: bool = fast_renderer_usable()
        self._road_source: list[Any] | None = None
        self._road_count = -1
        self._polygons = _STATIC_POLYGONS
        self._canvas: pygame.Surface | None = None
        self._flipped: pygame.Surface | None = None
        self._canvas_format: tuple[Any, ...] | None = None
        # Frame skipping: skip the next observation; the score of a skipped frame, to draw it later.
        self._skip_next = False
        self._skipped_score: float | None = None

    def skip_next_observation(self) -> None:
        """Make the next :meth:`step` return a copy of the previous observation instead of drawing one.

        :meth:`render_skipped_observation` draws it if needed after all; ``"human"`` windows are still
        drawn; :meth:`reset` cancels a pending skip.
        """
        self._skip_next = True

    def render_skipped_observation(self) -> Any:
        """The last step's observation, drawn now (score before the step's -0.1) if it was skipped."""
        if self._skipped_score is None:
            return self.state
        score = self.reward
        self.reward = self._skipped_score
        self._skipped_score = None
        try:
            self.state = self._render("state_pixels")
        finally:
            self.reward = score
        return self.state

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        """gymnasium's ``reset``; also cancels a pending :meth:`skip_next_observation`."""
        self._skip_next = False
        self._skipped_score = None
        return super().reset(seed=seed, options=options)

    def _render(self, mode: str) -> Any:
        if mode == "state_pixels":
            if self._skip_next:
                # float(): the v2 score mixin hands a float subclass that prints as v2 did.
                self._skip_next = False
                self._skipped_score = float(self.reward)
                # A copy: gymnasium's env checker warns about steps that share an array.
                return None if self.state is None else self.state.copy()
            self._skipped_score = None
        if not self.fast_render:
            return super()._render(mode)
        assert mode in self.metadata["render_modes"]
        pygame.font.init()
        if self.screen is None and mode == "human":
            pygame.display.init()
            self.screen = pygame.display.set_mode((WINDOW_W, WINDOW_H))
        if self.clock is None:
            self.clock = pygame.time.Clock()
        if "t" not in self.__dict__:
            return None  # reset() not called yet

        self.surf = self._blank_canvas()
        assert self.car is not None
        angle = -self.car.hull.angle
        # Animating first second zoom.
        zoom = 0.1 * SCALE * max(1 - self.t, 0) + ZOOM * SCALE * min(self.t, 1)
        position = self.car.hull.position
        scroll = pygame.math.Vector2(-position[0] * zoom, -position[1] * zoom).rotate_rad(angle)
        trans = (WINDOW_W / 2 + scroll[0], WINDOW_H / 4 + scroll[1])
        self._render_road(zoom, trans, angle)
        self._draw_car(zoom, trans, angle, mode not in ["state_pixels_list", "state_pixels"])
        self.surf = self._flip_vertically(self.surf)
        self._render_indicators(WINDOW_W, WINDOW_H)
        text = _score_text(f"{self.reward:04.0f}")
        self.surf.blit(text, text.get_rect(center=(60, WINDOW_H - WINDOW_H * 2.5 / 40.0)))

        if mode == "human":
            pygame.event.pump()
            self.clock.tick(self.metadata["render_fps"])
            assert self.screen is not None
            self.screen.fill(0)
            self.screen.blit(self.surf, (0, 0))
            pygame.display.flip()
            return None
        if mode == "rgb_array":
            return self._create_image_array(self.surf, (VIDEO_W, VIDEO_H))
        if mode == "state_pixels":
            return self._create_image_array(self.surf, (STATE_W, STATE_H))
        return self.isopen

    def _blank_canvas(self) -> pygame.Surface:
        """A black window-sized surface in the format ``pygame.Surface((W, H))`` has now.

        Fresh 3.2 MB surfaces per frame cost more than drawing, so canvas and flipped copy are kept;
        the format follows the display (``"human"`` mode sets one), so a 1x1 probe checks it."""
        probe = pygame.Surface((1, 1))
        fmt = (probe.get_bitsize(), probe.get_masks(), probe.get_flags())
        if self._canvas is None or fmt != self._canvas_format:
            self._canvas = pygame.Surface((WINDOW_W, WINDOW_H))
            self._flipped = self._canvas.copy()
            self._canvas_format = fmt
        else:
            self._canvas.fill(0)
        return self._canvas

    def _flip_vertically(self, canvas: pygame.Surface) -> pygame.Surface:
        """``pygame.transform.flip(canvas, False, True)``, into the kept surface for 32-bit surfaces."""
        flipped = self._flipped
        if flipped is None or canvas.get_bytesize() != 4:
            return pygame.transform.flip(canvas, False, True)
        source = pygame.surfarray.pixels2d(canvas)
        target = pygame.surfarray.pixels2d(flipped)
        target[...] = source[:, ::-1]  # pixels2d is indexed [x, y]
        del source, target  # unlock both surfaces before anything blits to them
        return flipped

    def _road_polygons(self) -> NDArray[np.float64]:
        """Playfield, grass and road polygons as ``(P, 4, 2)``, rebuilt when ``road_poly`` changes."""
        road_poly = self.road_poly
        if road_poly is not self._road_source or len(road_poly) != self._road_count:
            self._polygons = _STATIC_POLYGONS
            if road_poly:
                road = np.array([[(p[0], p[1]) for p in poly] for poly, _ in road_poly], dtype=np.float64)
                self._polygons = np.concatenate([_STATIC_POLYGONS, road.reshape(-1, 4, 2)])
            self._road_source = road_poly
            self._road_count = len(road_poly)
        return self._polygons

    def _render_road(self, zoom: float, translation: Any, angle: float) -> None:
        screen = to_screen(self._road_polygons(), angle, zoom, translation)
        x, y = screen[..., 0], screen[..., 1]
        # The culling box of the stock `_draw_colored_polygon`: a vertex inside keeps the polygon.
        inside = (x >= _CULL_LOW) & (x <= _CULL_HIGH_X) & (y >= _CULL_LOW) & (y <= _CULL_HIGH_Y)
        visible = np.asarray(inside.any(axis=1))
        visible[0] = True  # the playfield is drawn unclipped
        indices = np.flatnonzero(visible)
        for index, points in zip(indices.tolist(), screen[indices].tolist(), strict=True):
            if index == 0:
                color: Any = self.bg_color
            elif index < _N_STATIC:
                color = self.grass_color
            else:
                # Read per frame: touching a tile recolours it in place.
                color = [int(c) for c in self.road_poly[index - _N_STATIC][1]]
            gfxdraw.aapolygon(self.surf, points, color)
            gfxdraw.filled_polygon(self.surf, points, color)

    def _draw_car(self, zoom: float, translation: Any, angle: float, draw_particles: bool) -> None:
        """``Car.draw``: the same primitives, colours and order, all vertices transformed in one batch."""
        car = self.car
        assert car is not None
        world: list[tuple[float, float]] = []
        # (draw lines?, colour, first vertex, end vertex) per primitive, in drawing order.
        shapes: list[tuple[bool, Any, int, int]] = []

        def add(lines: bool, color: Any, vertices: Any, transform: Any = None) -> None:
            start = len(world)
            if transform is not None:
                vertices = [(w[0], w[1]) for w in [transform * v for v in vertices]]
            world.extend(vertices)
            shapes.append((lines, color, start, len(world)))

        for p in car.particles if draw_particles else ():
            add(True, p.color, p.poly)
        for obj in car.drawlist:
            color = [int(c * 255) for c in obj.color]
            for f in obj.fixtures:
                add(False, color, f.shape.vertices, f.body.transform)
                white = _wheel_stripe(obj.phase) if "phase" in obj.__dict__ else None
                if white is not None:
                    add(False, car_dynamics.WHEEL_WHITE, white, f.body.transform)
        if not shapes:
            return
        points = to_screen(np.array(world, dtype=np.float64), angle, zoom, translation)
        for lines, color, start, end in shapes:
            path = points[start:end].tolist()
            if lines:
                pygame.draw.lines(self.surf, color=color, points=path, width=2, closed=False)
            else:
                pygame.draw.polygon(self.surf, color=color, points=path)


def _wheel_stripe(phase: float) -> list[tuple[float, float]] | None:
    """The wheel's white stripe as ``Car.draw`` computes it (same roundings), or None when not visible."""
    s1 = math.sin(phase)
    s2 = math.sin(phase + 1.2)
    if s1 > 0 and s2 > 0:
        return None
    c1: Any = np.sign(math.cos(phase)) if s1 > 0 else math.cos(phase)
    c2: Any = np.sign(math.cos(phase + 1.2)) if s2 > 0 else math.cos(phase + 1.2)
    w, r, size = car_dynamics.WHEEL_W, car_dynamics.WHEEL_R, car_dynamics.SIZE
    return [
        (-w * size, +r * c1 * size),
        (+w * size, +r * c1 * size),
        (+w * size, +r * c2 * size),
        (-w * size, +r * c2 * size),
    ]
