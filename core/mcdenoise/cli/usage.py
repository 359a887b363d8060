"""What ``--help`` shows besides the flags: the program's description and every verb's examples.

The examples live here, in one table, so they are written once and checked once:
``tests/test_cli_help.py`` parses each command with the real parser, so an example whose flag or
choice is renamed fails a test instead of misleading a newcomer. They are real commands: paths
are the shipped ``examples/suzanne_4spp.exr``, the datasets ``render-dataset`` writes
(``data/train``, ``data/val`` as ``tools/render_all.sh`` lays them out), and files an earlier
example writes.
"""

from __future__ import annotations

DESCRIPTION = """\
mcdenoise: a learned denoiser for path-traced (Monte-Carlo) renders.

It reads EXR renders (Blender multilayer files with Combined, Denoising Albedo and Denoising
Normal, or other renderers' AOVs), adds a Denoised pass beside every original pass, and runs on a
single frame or a whole farm sequence, on CPU or GPU. 'compare' scores results against a reference
render; 'render-dataset', 'train' and 'bench' make, train and measure your own model."""

# (comment, command) pairs; the comment says what the command is for.
Example = tuple[str, str]

OVERVIEW: tuple[Example, ...] = (
    ("denoise the example render that ships with mcdenoise, plus a noisy | denoised PNG",
     "mcdenoise denoise examples/suzanne_4spp.exr -o suzanne_denoised.exr --preview suzanne_side_by_side.png"),
    ("score a denoised render's Denoised pass against a reference render ('mcdenoise compare --help')",
     "mcdenoise compare scene0_denoised.exr --pass Denoised --ref data/val/scene_00000/scene_00000_ref.exr"),
    ("every verb's options, with examples",
     "mcdenoise denoise --help"),
)

EXAMPLES: dict[str, tuple[Example, ...]] = {
    "denoise": (
        ("add a Denoised pass to the shipped example, plus a noisy | denoised PNG",
         "mcdenoise denoise examples/suzanne_4spp.exr -o suzanne_denoised.exr --preview suzanne_side_by_side.png"),
        ("the same with the larger, slower model",
         "mcdenoise denoise examples/suzanne_4spp.exr -o suzanne_high.exr --quality high"),
        ("a farm job: frames 1001-1240 of a sequence, this machine's quarter, past bad frames",
         "mcdenoise denoise 'renders/shot_####.exr' --frames 1001-1240 --out denoised/ --shard 0/4 --keep-going"),
        ("an animation with a Vector pass is stabilised over frames (temporal path); -v says which path runs",
         "mcdenoise denoise 'renders/shot_####.exr' --frames 1-240 --out denoised/ -v"),
    ),
    "compare": (
        ("denoise a validation frame (see render-dataset), then score its Denoised pass; PNGs into cmp/",
         "mcdenoise denoise data/val/scene_00000/scene_00000_0004spp.exr -o scene0_denoised.exr"),
        ("",
         "mcdenoise compare scene0_denoised.exr --pass Denoised --ref data/val/scene_00000/scene_00000_ref.exr --out cmp"),
        ("the noisy inputs at every sample count against the same reference, numbers into JSON",
         "mcdenoise compare data/val/scene_00000/scene_00000_*spp.exr --ref data/val/scene_00000/scene_00000_ref.exr --json noisy.json"),
    ),
    "eval-dncnn": (
        ("the DnCNN paper's sigma=25 row on BSD68 with the authors' weights",
         "mcdenoise eval-dncnn --weights ../shared/dncnn/weights/dncnn_s_sigma25.pth --images ../shared/dncnn/testsets/BSD68 --sigma 25"),
        ("a quick look: the first 10 images of the sigma=15 model, each image's PSNR",
         "mcdenoise eval-dncnn --weights ../shared/dncnn/weights/dncnn_s_sigma15.pth --images ../shared/dncnn/testsets/BSD68 --sigma 15 --limit 10 -v"),
    ),
    "render-dataset": (
        ("400 training scenes at 256x256 (resumable: finished scenes are skipped)",
         "mcdenoise render-dataset --out data/train --scenes 400"),
        ("the validation set: 10 scenes from another seed range, 512-spp references",
         "mcdenoise render-dataset --out data/val --scenes 10 --seed-offset 1000000 --ref-spp 512"),
        ("one of four machines rendering the same training set, on its GPU, without a progress bar (for logs)",
         "mcdenoise render-dataset --out data/train --scenes 400 --shard 0/4 --render-device gpu --quiet"),
        ("40 animated training sequences of 8 frames at 128x128 (moving camera, objects, lights; Vector pass)",
         "mcdenoise render-dataset --out data/seq --scenes 40 --frames 8 --res 128 --spp 2,4,8 --ref-spp 256"),
    ),
    "render-suite": (
        ("the suite's scenes: name, kind and what each shows",
         "mcdenoise render-suite --list"),
        ("render the whole suite (resumable), references with adaptive sampling to save CPU time",
         "mcdenoise render-suite --out data/suite --ref-threshold 0.005"),
        ("two scenes only, at a smaller size",
         "mcdenoise render-suite --out data/suite_small --scenes fog_spot,glass_caustics --res 128"),
        ("an animated shot for bench --sequence: 12 frames at 4 spp, Vector pass, a reference per frame, its .blend",
         "mcdenoise render-suite --out data/shots --shots mixed_dolly --frames 12 --res 128 --ref-spp 1024"),
    ),
    "train": (
        ("train for an hour (resumable) and export the weights",
         "mcdenoise train --data data/train --out runs/unet --minutes 60 --export my_model.pt"),
        ("fine-tune the shipped model on your own renders",
         "mcdenoise train --data my_renders --out runs/tuned --init core/mcdenoise/weights/default.pt --steps 2000"),
        ("export the newest checkpoint of a run without training",
         "mcdenoise train --out runs/unet --no-train --export my_model.pt"),
    ),
    "train-prefilter": (
        ("train the aux prefilter on a rendered dataset and add it to the default model (resumable)",
         "mcdenoise train-prefilter --data data/train --out runs/prefilter -o default_accurate.pt"),
        ("add the newest checkpoint's prefilter to the high-quality model, without training",
         "mcdenoise train-prefilter --out runs/prefilter --no-train --base high -o high_accurate.pt"),
        ("",
         "mcdenoise denoise frame.exr -o denoised.exr --weights default_accurate.pt"),
    ),
    "train-temporal": (
        ("train the temporal blend for an hour on sequences from render-dataset --frames (resumable)",
         "mcdenoise train-temporal --data data/seq --out runs/temporal --minutes 60"),
        ("write the newest checkpoint's weights without training, then denoise a shot with them",
         "mcdenoise train-temporal --out runs/temporal --no-train -o temporal.pt"),
        ("",
         "mcdenoise denoise 'renders/shot_####.exr' --frames 1-240 --out denoised/ --temporal-weights temporal.pt -v"),
    ),
    "recipe": (
        ("where rebuilding the default model stands: scenes rendered, stages trained",
         "mcdenoise recipe recipes/balanced.toml --dry-run"),
        ("work on it for three hours (render, then train); the same command continues it later",
         "mcdenoise recipe recipes/balanced.toml --minutes 180"),
        ("train on a GPU once the data is rendered, writing the weights where you say",
         "mcdenoise recipe recipes/balanced.toml --only train --device cuda -o default.pt"),
    ),
    "finetune": (
        ("ten minutes in all (rendering included) tuning the default model on frames 1-12 of your shot",
         "mcdenoise finetune shot.blend --frames 1-12 --minutes 10 -o shot.pt"),
        ("then denoise the shot's frames with it",
         "mcdenoise denoise 'renders/shot_####.exr' --frames 1-240 --out denoised/ --weights shot.pt"),
        ("from renders you already have (any renderer): noisy frames and references matched by frame number",
         "mcdenoise finetune --pairs renders/noisy renders/refs --minutes 5 -o shot.pt --quality high"),
    ),
    "bench": (
        ("quality against OIDN on the validation set: report.md, results.json, plot and crops",
         "mcdenoise bench --data data/val --out bench_report"),
        ("the benchmark suite (see render-suite) per scene and kind against OIDN-Accurate: suite.md, chart, crops",
         "mcdenoise bench --suite data/suite --out bench_report"),
        ("flicker and per-frame PSNR on animated shots (see render-suite --shots): ours single-frame and temporal, OIDN",
         "mcdenoise bench --sequence data/shots --out bench_report"),
        ("a model fine-tuned on frames 1-12 of a shot's .blend, scored on frames 13-24 beside the shipped model and OIDN",
         "mcdenoise bench --sequence data/shots --shots interior_pan --frames 13-24 --weights tuned.pt --out bench_report"),
        ("speed against OIDN on synthetic frames, two of our model sizes, on the CPU only",
         "mcdenoise bench --speed --device cpu --quality fast,balanced --out bench_report"),
        ("your trained model against the shipped default, without OIDN",
         "mcdenoise bench --data data/val --models balanced my_model.pt --no-oidn"),
    ),
}


def epilog(examples: tuple[Example, ...]) -> str | None:
    """An ``examples:`` section for ``RawDescriptionHelpFormatter`` (kept as written)."""
    if not examples:
        return None
    lines = ["examples:"]
    for comment, command in examples:
        if comment:
            lines.append(f"  # {comment}")
        lines.append(f"  {command}")
    return "\n".join(lines)
