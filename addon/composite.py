"""The denoised composite: the scene's compositor run again on the Denoised pass.

Blender composites a frame as soon as it is rendered, before any handler could add a pass, so
the composite in the Render Result and in the EXR's ``Composite`` layer is made from the noisy
render. The only way Blender offers to composite other pixels is an Image node. So
:func:`recomposite` runs the scene's own compositor a second time with each (unmuted) Render
Layers node stood in for by Image nodes of the denoised EXR: every link from the node's
``Image`` output then comes from the view layer's ``Denoised`` pass, every other output (Alpha,
Depth, Cryptomatte, ...) from the same pass of the file. With no Render Layers node left,
Blender's render runs the compositor only (no path tracing: milliseconds). File Output nodes
are muted for that render: the files they wrote stay as the render made them. The artist's node
tree is left as it was: Blender 5.0's compositor is a node group, so a copy of it is edited and
assigned for that one render; 4.2-4.5 keep the tree inside the scene, so it is edited in place
and every change undone afterwards.

Blender 4.x reads multi-part EXRs (the Denoised pass is added as a part of its own) as several
layers named after the parts ('Part0.ViewLayer', 'ViewLayer.Denoised.ViewLayer'); a view
layer's passes are gathered from every layer of the file that belongs to it, with the names the
Image node itself lists.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import bpy

from . import render_view, status, worker
from .worker import AddonError

RENDER_LAYERS = "CompositorNodeRLayers"
IMAGE_NODE = "CompositorNodeImage"
FILE_OUTPUT = "CompositorNodeOutputFile"
COMPOSITE_SUFFIX = "_composite"


def composite_path(exr: Path) -> Path:
    """Where the denoised composite of ``exr`` is saved: ``<name>_composite.exr`` beside it (a
    frame number stays the last digits of the name, so Blender still reads them as a sequence)."""
    return exr.with_name(f"{exr.stem}{COMPOSITE_SUFFIX}.exr")


def layer_items(node: bpy.types.Node) -> list[str]:
    """The layers an Image node offers for its image. Blender lists them only in the error of an
    assignment that fails (the enum is built from the loaded file), so that error is read."""
    current = node.layer
    try:
        node.layer = "\x01 no such layer"
    except TypeError as exc:
        _, _, listed = str(exc).partition("not found in")
        items = re.findall(r"'((?:[^'\\]|\\.)*)'", listed)
        return items or [current]
    return [current]


def _belongs(item: str, layer: str) -> bool:
    """Whether an Image node's layer ``item`` holds passes of view layer ``layer``: its own name,
    or a multi-part file's part prefix before it ('Part0.ViewLayer')."""
    return item == layer or item.endswith("." + layer)


def _pass_nodes(tree: bpy.types.NodeTree, image: bpy.types.Image, layer: str, created: list) -> dict:
    """Pass name -> Image node output for view layer ``layer`` of ``image`` (one node per layer
    of the file that holds some of its passes)."""
    probe = tree.nodes.new(IMAGE_NODE)
    created.append(probe)
    probe.image = image
    items = [item for item in layer_items(probe) if _belongs(item, layer)]
    outputs: dict = {}
    for index, item in enumerate(items):
        node = probe if index == 0 else tree.nodes.new(IMAGE_NODE)
        if node is not probe:
            created.append(node)
            node.image = image
        node.layer = item
        for output in node.outputs:
            if output.enabled:
                outputs.setdefault(output.name, output)
    return outputs


def _render_layers_nodes(tree: bpy.types.NodeTree, scene: bpy.types.Scene) -> list[bpy.types.Node]:
    nodes = [n for n in tree.nodes if n.bl_idname == RENDER_LAYERS and not n.mute]
    for node in nodes:
        if node.scene is not None and node.scene != scene:
            raise AddonError(f"the compositor's node '{node.name}' reads scene '{node.scene.name}': only this scene's "
                             "view layers have a denoised file; mute that node to re-composite")
    for node in tree.nodes:
        group = getattr(node, "node_tree", None)
        if group is not None and any(n.bl_idname == RENDER_LAYERS for n in group.nodes):
            raise AddonError(f"the compositor's group '{node.name}' holds a Render Layers node: move it to the top "
                             "level of the compositor to re-composite")
    if not nodes:
        raise AddonError("the compositor reads no Render Layers node: nothing of the render to re-composite")
    return nodes


def stand_in(tree: bpy.types.NodeTree, scene: bpy.types.Scene, image: bpy.types.Image, pass_name: str):
    """Feed every link of the tree's Render Layers nodes from ``image`` (``Image`` from the
    ``pass_name`` pass) and mute those nodes, and the File Output nodes (they would write over
    the files of the render). Returns what undoes it."""
    created: list = []
    relinked: list = []  # (original from-socket, to-socket)
    muted: list = []

    def undo() -> None:
        for node in created:
            tree.nodes.remove(node)
        for from_socket, to_socket in relinked:
            tree.links.new(from_socket, to_socket)
        for node in muted:
            node.mute = False

    try:
        for node in _render_layers_nodes(tree, scene):
            layer = node.layer
            outputs = _pass_nodes(tree, image, layer, created)
            if pass_name not in outputs:
                raise AddonError(f"{bpy.path.abspath(image.filepath)}: no '{pass_name}' pass for view layer '{layer}': "
                                 "denoise the frame first")
            for output in node.outputs:
                for link in list(output.links):
                    source = outputs.get(pass_name if output.name in ("Image", "Combined") else output.name)
                    if source is None:
                        raise AddonError(f"the compositor uses the '{output.name}' pass of view layer '{layer}', which "
                                         f"{bpy.path.abspath(image.filepath)} does not hold")
                    relinked.append((link.from_socket, link.to_socket))
                    tree.links.new(source, link.to_socket)
            node.mute = True
            muted.append(node)
        for node in tree.nodes:  # the artist's files stay as the render wrote them
            if node.bl_idname == FILE_OUTPUT and not node.mute:
                node.mute = True
                muted.append(node)
    except BaseException:
        undo()
        raise
    return undo


def _default_tree_5x(scene: bpy.types.Scene) -> bpy.types.NodeTree:
    """Blender 5.0: what compositing off means, as a node group: the render, unchanged."""
    tree = bpy.data.node_groups.new(".mcdenoise composite", "CompositorNodeTree")
    tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    layers, output = tree.nodes.new(RENDER_LAYERS), tree.nodes.new("NodeGroupOutput")
    layers.scene = scene
    tree.links.new(layers.outputs[0], output.inputs[0])
    return tree


@contextlib.contextmanager
def denoised_compositor(scene: bpy.types.Scene, image: bpy.types.Image, pass_name: str):
    """The scene's compositor reading ``image``'s denoised passes, for the time of the block."""
    render = scene.render
    before = {"use_compositing": render.use_compositing}
    if hasattr(scene, "compositing_node_group"):  # Blender 5.0+: a node group we may copy
        assigned = scene.compositing_node_group
        group = assigned if render.use_compositing else None  # compositing off: the render as it is
        tree = group.copy() if group is not None else _default_tree_5x(scene)
        scene.compositing_node_group = tree
        try:
            render.use_compositing = True
            stand_in(tree, scene, image, pass_name)
            yield
        finally:
            scene.compositing_node_group = assigned
            bpy.data.node_groups.remove(tree)
            render.use_compositing = before["use_compositing"]
        return
    # 4.2-4.5: the tree lives in the scene; edited in place and put back.
    before["use_nodes"] = scene.use_nodes
    compositing = render.use_compositing and scene.use_nodes
    scene.use_nodes = True  # creates Render Layers -> Composite when the scene has no tree yet
    tree = scene.node_tree
    undo_plain = None
    if not compositing:  # compositing off: the render as it is, through a tree of our own
        undo_plain = _plain_tree_4x(tree)
    try:
        render.use_compositing = True
        undo = stand_in(tree, scene, image, pass_name)
        try:
            yield
        finally:
            undo()
    finally:
        if undo_plain is not None:
            undo_plain()
        render.use_compositing = before["use_compositing"]
        scene.use_nodes = before["use_nodes"]


def _plain_tree_4x(tree: bpy.types.NodeTree):
    """Blender 4.x with compositing off: mute the artist's nodes' effect by routing a Render
    Layers node straight into the Composite node for the time of the block."""
    composite = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite"), None)
    added = []
    if composite is None:
        composite = tree.nodes.new("CompositorNodeComposite")
        added.append(composite)
    layers = tree.nodes.new(RENDER_LAYERS)
    added.append(layers)
    old = [link.from_socket for link in composite.inputs[0].links]
    others = [n for n in tree.nodes if n.bl_idname == RENDER_LAYERS and n not in added and not n.mute]
    for node in others:
        node.mute = True
    tree.links.new(layers.outputs[0], composite.inputs[0])

    def undo() -> None:
        for node in others:
            node.mute = False
        for node in added:
            tree.nodes.remove(node)
        for socket in old:
            tree.links.new(socket, composite.inputs[0])

    return undo


@contextlib.contextmanager
def _quiet(scene: bpy.types.Scene):
    """Auto-denoise off while the compositor runs: that render is not a frame to denoise."""
    settings = scene.mcdenoise
    auto = settings.auto_denoise
    settings.auto_denoise = False
    try:
        yield
    finally:
        settings.auto_denoise = auto


def recomposite(scene: bpy.types.Scene, exr: Path, pass_name: str, save_to: Path | None = None,
                slot: bool = True) -> Path | None:
    """Composite ``exr``'s denoised passes with the scene's compositor into the Render Result (a
    render slot of its own when ``slot``: J in the Image Editor compares it with the render) and,
    with ``save_to``, an EXR of the composite. Main thread only; never while a render runs."""
    if bpy.app.is_job_running("RENDER"):
        raise AddonError("a render is running: re-composite when it has finished")
    if scene.render.use_multiview:
        raise AddonError("re-compositing a stereo or multi-view render is not supported: composite the Denoised "
                         "pass of each view's EXR in a scene of its own")
    if not exr.is_file():
        raise AddonError(f"{exr}: no such file; render and denoise the frame first")
    image = bpy.data.images.load(str(exr), check_existing=False)
    try:
        target = render_view.use_denoised_slot() if slot else None
        with _quiet(scene), denoised_compositor(scene, image, pass_name):
            bpy.ops.render.render(scene=scene.name)
        render_view.composited(target)
        if save_to is not None:
            render_view.save_render_result(scene, save_to)
    finally:
        bpy.data.images.remove(image)
    return save_to


# The last denoised file of this session, for the operator without a file: F12 without saving
# denoises a scratch copy of the Render Result, which only the add-on knows.
_last: dict[str, Path | None] = {"exr": None}
# The latest frame to show once the render running now has finished.
_pending: dict = {}


def remember(exr: Path) -> None:
    _last["exr"] = exr


def show_denoised(scene_name: str, exr: Path, pass_name: str) -> None:
    """Main thread, after a frame was denoised in an interactive Blender: its denoised
    composite into the Render Result's ``Denoised`` slot, when the scene asks for it. Waits
    for a render still running (an animation's next frame) and shows the latest frame then."""
    remember(exr)
    scene = bpy.data.scenes.get(scene_name)
    if scene is None or not scene.mcdenoise.show_denoised or bpy.app.background:
        return
    if bpy.app.is_job_running("RENDER"):
        if not bpy.app.timers.is_registered(_show_latest):
            bpy.app.timers.register(_show_latest, first_interval=0.5)
        _pending.update(scene=scene_name, exr=exr, pass_name=pass_name)
        return
    into_slot(scene, exr, pass_name)


def into_slot(scene: bpy.types.Scene, exr: Path, pass_name: str) -> bool:
    """:func:`recomposite` into the Render Result's slot, any failure reported (main thread)."""
    remember(exr)
    try:
        recomposite(scene, exr, pass_name)
    except Exception as exc:  # noqa: BLE001 - never take Blender down
        status.report(f"denoised composite not shown: {worker.describe(exc)}", error=True)
        return False
    return True


def draw(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    """The panel's row: the automatic slot and the button."""
    row = layout.row(align=True)
    row.prop(context.scene.mcdenoise, "show_denoised")
    row.operator("mcdenoise.recomposite", text="", icon="NODE_COMPOSITING")



def _show_latest() -> float | None:
    if bpy.app.is_job_running("RENDER"):
        return 0.5
    if _pending:
        show_denoised(_pending.pop("scene"), _pending.pop("exr"), _pending.pop("pass_name"))
    return None


class MCDENOISE_OT_recomposite(bpy.types.Operator):
    """Run the scene's compositor again with each view layer's Denoised pass in place of its render: into the Render Result's 'Denoised' slot (J compares it with the render), and saved beside each EXR for an animation"""

    bl_idname = "mcdenoise.recomposite"
    bl_label = "Denoised composite"
    bl_options = {"REGISTER"}

    filepath: bpy.props.StringProperty(
        name="EXR", subtype="FILE_PATH",
        description="A multilayer EXR with the Denoised pass; empty = the last frame denoised, else the current frame's output file")
    animation: bpy.props.BoolProperty(
        name="Animation", description="Every frame of the scene's range whose output EXR has the Denoised pass; each "
        "composite is saved as '<frame>_composite.exr' beside it")
    save: bpy.props.BoolProperty(name="Save", description="Save the composite as '<name>_composite.exr' beside the EXR")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and not bpy.app.is_job_running("RENDER")

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        pass_name = scene.mcdenoise.pass_name
        try:
            if self.animation:
                done, skipped = self._animation(scene, pass_name)
                message = f"denoised composite of {done} frame(s) saved beside their EXRs"
                if skipped:
                    message += f"; {len(skipped)} without a denoised EXR skipped (frames {', '.join(map(str, skipped[:8]))})"
            else:
                exr = self._file(scene)
                saved = recomposite(scene, exr, pass_name, composite_path(exr) if self.save else None)
                message = f"denoised composite of {exr.name} in the Render Result's '{render_view.SLOT_NAME}' slot" + (
                    f", saved as {saved}" if saved else "")
        except Exception as exc:  # noqa: BLE001 - reported, never raised into Blender
            message = worker.describe(exc)
            status.report(message, error=True)
            self.report({"ERROR"}, message)
            return {"CANCELLED"}
        status.report(message)
        self.report({"INFO"}, message)
        return {"FINISHED"}

    def _file(self, scene: bpy.types.Scene) -> Path:
        if self.filepath:
            return Path(bpy.path.abspath(self.filepath))
        if _last["exr"] is not None and _last["exr"].is_file():
            return _last["exr"]
        from .handlers import candidates  # noqa: PLC0415 (the files a render of this frame writes)

        written = [Path(p) for p in candidates(scene) if Path(p).is_file()]
        if not written:
            raise AddonError(f"no denoised EXR of frame {scene.frame_current} at {scene.render.filepath}: render it "
                             "with Auto-denoise on, or pick the file")
        return written[0]

    def _animation(self, scene: bpy.types.Scene, pass_name: str) -> tuple[int, list[int]]:
        """Each frame's output EXR through the compositor (animated node values at their frame)."""
        current, done, skipped = scene.frame_current, 0, []
        try:
            for frame in range(scene.frame_start, scene.frame_end + 1, scene.frame_step):
                exr = Path(scene.render.frame_path(frame=frame))
                if not exr.is_file():
                    skipped.append(frame)
                    continue
                scene.frame_set(frame)
                try:
                    recomposite(scene, exr, pass_name, composite_path(exr), slot=False)
                except AddonError as exc:  # a frame rendered without auto-denoise: the others go on
                    print(f"mcdenoise: frame {frame}: {exc}")
                    skipped.append(frame)
                    continue
                done += 1
        finally:
            scene.frame_set(current)
        return done, skipped
