"""``FastCarRacing``: gymnasium's CarRacing with the same pixels, rendered about 2.5x faster.

gymnasium's CarRacing renders every step (the observation *is* the rendered frame), and
its renderer spends most of its time in Python: each of ~1,000 background, grass and
road polygons is rotated vertex by vertex with ``pygame.math.Vector2.rotate_rad``, culled
against the window in a generator expression, and then, if visible (typically 40-80 of
them), drawn with ``pygame.gfxdraw``. It also loads the score font from disk and renders
the score text on every frame. Box2D physics is a small fraction of a step.

:class:`FastCarRacing` keeps gymnasium's physics, track generation, rewards and episode
logic (it is a subclass and overrides only rendering) and changes how the frame is
computed, never what is drawn:

* all polygon vertices of a frame are rotated, scaled, translated and culled in one
  batch of float64 NumPy operations that repeat ``Vector2.rotate_rad``'s arithmetic
  (angle reduced with ``fmod``, the exact-quarter-turn special cases, then
  ``cos*x - sin*y`` and ``sin*x + cos*y``) and the stock ``c * zoom + t`` operation by
  operation, so every coordinate handed to pygame is the same double as the stock
  renderer's, in the same order, with the same colours;
* the static geometry (playfield, grass, and the road once per track) is turned into
  arrays once, not per frame;
* rendered score texts are kept (by their string) instead of opening the font file and
  rendering the text on every frame;
* the car is drawn by the same vectorised transform with the same pygame primitives as
  ``Car.draw``;
* with frame skipping, the frames nobody observes are not drawn at all
  (:meth:`FastCarRacing.skip_next_observation`, used by
  :class:`~relic_rl.environments.wrappers.FrameSkip`): the physics steps, the frame that is
  returned is drawn once, from the same state the stock env would have drawn it from.

Everything that reaches a pygame drawing call (primitive, coordinates, colour, order) is
identical, so observations and ``rgb_array`` frames are bit-identical to the stock env's;
the test suite checks this frame by frame.

The renderer is tied to the gymnasium code it reproduces: it is used only for the
gymnasium versions in :data:`VERIFIED_GYMNASIUM`, and only where :func:`rotate` matches
this pygame build's ``Vector2.rotate_rad`` bit for bit (checked once per process). Else
the class renders with gymnasium's own methods and says so once
(:func:`fast_renderer_usable`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
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

# The culling box of the stock `_draw_colored_polygon`: a vertex inside it keeps the polygon.
_CULL_LOW = -MAX_SHAPE_DIM
_CULL_HIGH_X = WINDOW_W + MAX_SHAPE_DIM
_CULL_HIGH_Y = WINDOW_H + MAX_SHAPE_DIM


def to_screen(
    points: NDArray[np.float64], angle: float, zoom: float, translation: tuple[float, float]
) -> NDArray[np.float64]:
    """World ``(..., 2)`` points to window coordinates as the stock renderer computes them:
    ``rotate_rad(angle)``, then ``c * zoom + translation`` per axis."""
    out = rotate(points, angle)
    out *= zoom
    out[..., 0] += translation[0]
    out[..., 1] += translation[1]
    return out


def _static_polygons() -> NDArray[np.float64]:
    """The playfield and the 400 grass patches, in the stock drawing order, as ``(401, 4, 2)``."""
    bounds = PLAYFIELD
    polygons = [[(bounds, bounds), (bounds, -bounds), (-bounds, -bounds), (-bounds, bounds)]]
    for x in range(-20, 20, 2):
        for y in range(-20, 20, 2):
            polygons.append(
                [
                    (GRASS_DIM * x + GRASS_DIM, GRASS_DIM * y + 0),
                    (GRASS_DIM * x + 0, GRASS_DIM * y + 0),
                    (GRASS_DIM * x + 0, GRASS_DIM * y + GRASS_DIM),
                    (GRASS_DIM * x + GRASS_DIM, GRASS_DIM * y + GRASS_DIM),
                ]
            )
    return np.array(polygons, dtype=np.float64)


_STATIC_POLYGONS = _static_polygons()
_N_STATIC = len(_STATIC_POLYGONS)


class _ScoreTexts:
    """Rendered score texts, shared by the envs of a process (least recently used dropped).

    The stock renderer opens the default font file and renders the score on every frame,
    although the text changes only every ~10 steps. Here a rendered text is kept as a
    plain surface keyed by its string; a text not seen before is rendered as the stock
    renderer does, with a freshly opened font. No ``pygame.font.Font`` is kept, so
    ``pygame.quit()`` or ``pygame.font.quit()`` between frames cannot leave a stale font
    behind (a surface does not depend on the font module once rendered).
    """

    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self.surfaces: OrderedDict[str, pygame.Surface] = OrderedDict()

    def get(self, text: str) -> pygame.Surface:
        surface = self.surfaces.get(text)
        if surface is not None:
            self.surfaces.move_to_end(text)
            return surface
        font = pygame.font.Font(pygame.font.get_default_font(), 42)
        surface = font.render(text, True, (255, 255, 255), (0, 0, 0))
        self.surfaces[text] = surface
        if len(self.surfaces) > self.capacity:
            self.surfaces.popitem(last=False)
        return surface


_SCORE_TEXTS = _ScoreTexts()


class FastCarRacing(CarRacing):
    """gymnasium's ``CarRacing`` with a faster, pixel-identical renderer.

    Takes exactly the constructor arguments of gymnasium's ``CarRacing``
    (``render_mode``, ``verbose``, ``lap_complete_percent``, ``domain_randomize``,
    ``continuous``) and behaves identically: same physics, tracks, rewards,
    ``terminated``/``truncated``/``info``, and ``np.array_equal`` observations and
    ``rgb_array`` frames for the same seed and actions. Only the time a step takes
    differs (see the module docstring for how).

    ``render_mode`` ``"rgb_array"``, ``"state_pixels"`` and ``"human"`` keep their
    meaning. On a gymnasium release outside :data:`VERIFIED_GYMNASIUM`, or where the
    arithmetic self-check fails (:func:`fast_renderer_usable`), it renders with gymnasium's
    own code (warning once); :attr:`fast_render` tells which is in use.

    Unlike the stock env, ``self.surf`` (the last frame's window-sized surface) is reused
    from frame to frame instead of being reallocated.
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
        #: True when this env renders with the fast renderer, False when it fell back to
        #: gymnasium's (unverified gymnasium release, or pygame arithmetic it cannot reproduce).
        self.fast_render: bool = fast_renderer_usable()
        self._road_source: list[Any] | None = None
        self._road_count = -1
        self._polygons = _STATIC_POLYGONS
        self._canvas: pygame.Surface | None = None
        self._flipped: pygame.Surface | None = None
        self._canvas_format: tuple[Any, ...] | None = None
        # Frame skipping: the next observation is not drawn (skip_next_observation), and the
        # score of a frame that was skipped, for drawing it later (render_skipped_observation).
        self._skip_next = False
        self._skipped_score: float | None = None

    # -- frames nobody observes --------------------------------------------------

    def skip_next_observation(self) -> None:
        """Do not draw the observation of the next :meth:`step`.

        For frame skipping, where only every k-th frame is observed. The next ``step``
        runs the physics, rewards and episode logic as always, but instead of drawing the
        ``state_pixels`` frame it returns a copy of the previous observation in its place;
        :meth:`render_skipped_observation` draws the skipped frame afterwards if it is
        needed after all (the episode ended inside the skip). ``render_mode="human"``
        windows are still drawn on every step. :meth:`reset` cancels a pending skip.
        """
        self._skip_next = True

    def render_skipped_observation(self) -> Any:
        """The observation of the last step, drawn now if that step skipped it.

        The frame is the one the stock env draws inside ``step``: the state after the
        physics step, with the score as it was at that point (before the step's -0.1),
        so it is pixel-identical to a step that was not skipped.

        :return: the ``(96, 96, 3)`` uint8 observation.
        """
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

    # -- frame -----------------------------------------------------------------

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
        scroll_x = -(self.car.hull.position[0]) * zoom
        scroll_y = -(self.car.hull.position[1]) * zoom
        scroll = pygame.math.Vector2((scroll_x, scroll_y)).rotate_rad(angle)
        trans = (WINDOW_W / 2 + scroll[0], WINDOW_H / 4 + scroll[1])

        self._render_road(zoom, trans, angle)
        self._draw_car(zoom, trans, angle, mode not in ["state_pixels_list", "state_pixels"])

        self.surf = self._flip_vertically(self.surf)

        # showing stats
        self._render_indicators(WINDOW_W, WINDOW_H)

        text = _SCORE_TEXTS.get(f"{self.reward:04.0f}")
        text_rect = text.get_rect()
        text_rect.center = (60, WINDOW_H - WINDOW_H * 2.5 / 40.0)
        self.surf.blit(text, text_rect)

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

        The stock renderer allocates two fresh 3.2 MB surfaces per frame (the canvas and
        its flipped copy); touching fresh pages costs more than drawing. Here both are
        kept and the canvas is cleared, which gives the same all-zero pixels. The format
        of a new surface follows the display (``"human"`` mode sets one), so it is
        checked on every frame with a 1x1 probe.
        """
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
        """``pygame.transform.flip(canvas, False, True)`` written into a kept surface.

        A row-reversed copy of the pixels, so the result is the same; 32-bit surfaces are
        copied with NumPy into the kept surface, other depths use pygame's flip.
        """
        flipped = self._flipped
        if flipped is None or canvas.get_bytesize() != 4:
            return pygame.transform.flip(canvas, False, True)
        source = pygame.surfarray.pixels2d(canvas)
        target = pygame.surfarray.pixels2d(flipped)
        # pixels2d is indexed [x, y]; rows are reversed along y.
        target[...] = source[:, ::-1]
        del source, target  # unlock both surfaces before anything blits to them
        return flipped

    # -- background, grass and road ------------------------------------------------

    def _road_polygons(self) -> NDArray[np.float64]:
        """Playfield, grass and road polygons of the current track as ``(P, 4, 2)``,
        rebuilt only when ``road_poly`` is replaced or grows."""
        road_poly = self.road_poly
        if road_poly is not self._road_source or len(road_poly) != self._road_count:
            if road_poly:
                road = np.array([[(p[0], p[1]) for p in poly] for poly, _ in road_poly], dtype=np.float64)
                self._polygons = np.concatenate([_STATIC_POLYGONS, road.reshape(-1, 4, 2)])
            else:
                self._polygons = _STATIC_POLYGONS
            self._road_source = road_poly
            self._road_count = len(road_poly)
        return self._polygons

    def _render_road(self, zoom: float, translation: Any, angle: float) -> None:
        polygons = self._road_polygons()
        screen = to_screen(polygons, angle, zoom, (translation[0], translation[1]))
        x = screen[..., 0]
        y = screen[..., 1]
        inside = (x >= _CULL_LOW) & (x <= _CULL_HIGH_X) & (y >= _CULL_LOW) & (y <= _CULL_HIGH_Y)
        visible = np.asarray(inside.any(axis=1))
        visible[0] = True  # the playfield is drawn unclipped
        surf = self.surf
        road_poly = self.road_poly
        indices = np.flatnonzero(visible)
        for index, points in zip(indices.tolist(), screen[indices].tolist(), strict=True):
            if index == 0:
                color: Any = self.bg_color
            elif index < _N_STATIC:
                color = self.grass_color
            else:
                # Read per frame: touching a tile recolours it in place.
                color = [int(c) for c in road_poly[index - _N_STATIC][1]]
            gfxdraw.aapolygon(surf, points, color)
            gfxdraw.filled_polygon(surf, points, color)

    # -- car ----------------------------------------------------------------------

    def _draw_car(self, zoom: float, translation: Any, angle: float, draw_particles: bool) -> None:
        """``Car.draw``: the same primitives, colours and order, with every vertex of the
        frame transformed in one batch."""
        car = self.car
        assert car is not None
        surface = self.surf
        world: list[tuple[float, float]] = []
        # (draw lines?, colour, first vertex, end vertex) per primitive, in drawing order.
        shapes: list[tuple[bool, Any, int, int]] = []
        if draw_particles:
            for p in car.particles:
                start = len(world)
                world.extend(p.poly)
                shapes.append((True, p.color, start, len(world)))
        for obj in car.drawlist:
            color = [int(c * 255) for c in obj.color]
            wheel = "phase" in obj.__dict__
            for f in obj.fixtures:
                trans = f.body.transform
                start = len(world)
                world.extend((v[0], v[1]) for v in [trans * v for v in f.shape.vertices])
                shapes.append((False, color, start, len(world)))
                if not wheel:
                    continue
                white = _wheel_stripe(obj.phase)
                if white is None:
                    continue
                start = len(world)
                world.extend((v[0], v[1]) for v in [trans * v for v in white])
                shapes.append((False, car_dynamics.WHEEL_WHITE, start, len(world)))
        if not shapes:
            return
        points = to_screen(np.array(world, dtype=np.float64), angle, zoom, (translation[0], translation[1]))
        for lines, color, start, end in shapes:
            path = points[start:end].tolist()
            if lines:
                pygame.draw.lines(surface, color=color, points=path, width=2, closed=False)
            else:
                pygame.draw.polygon(surface, color=color, points=path)


def _wheel_stripe(phase: float) -> list[tuple[float, float]] | None:
    """The wheel's white stripe in wheel coordinates as ``Car.draw`` computes it, or None
    when it is not drawn (both edges on the far side of the wheel)."""
    a1 = phase
    a2 = phase + 1.2  # radians
    s1 = math.sin(a1)
    s2 = math.sin(a2)
    c1: Any = math.cos(a1)
    c2: Any = math.cos(a2)
    if s1 > 0 and s2 > 0:
        return None
    if s1 > 0:
        c1 = np.sign(c1)
    if s2 > 0:
        c2 = np.sign(c2)
    wheel_w, wheel_r, size = car_dynamics.WHEEL_W, car_dynamics.WHEEL_R, car_dynamics.SIZE
    # Same expressions (and so the same roundings) as Car.draw.
    return [
        (-wheel_w * size, +wheel_r * c1 * size),
        (+wheel_w * size, +wheel_r * c1 * size),
        (+wheel_w * size, +wheel_r * c2 * size),
        (-wheel_w * size, +wheel_r * c2 * size),
    ]
