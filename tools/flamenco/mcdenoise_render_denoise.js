// SPDX-License-Identifier: MIT
//
// Flamenco job type: render a Blender scene to multilayer EXR in chunks, then denoise the
// sequence with mcdenoise. Copy this file into the `scripts/` folder beside the
// flamenco-manager executable (docs/farm.md). It follows the built-in "Simple Blender Render"
// job type: JOB_TYPE declares the settings, compileJob(job) adds the tasks.
//
// The denoise tasks run after every render task and split the frame range with
// `--shard i/n`: frame by frame that is every n-th frame, and on the temporal path (frames with
// a Vector pass) the i-th contiguous block, warmed up on the frames before it, so the shards
// joined equal one whole run. Each task resumes (finished frames are skipped) and writes its
// outputs atomically, so a requeued task is safe.

const JOB_TYPE = {
    label: "Render + mcdenoise",
    description: "Render frames to multilayer EXR, then add a Denoised pass to each with mcdenoise",
    settings: [
        // Settings for artists to determine:
        { key: "frames", type: "string", required: true,
          eval: "f'{C.scene.frame_start}-{C.scene.frame_end}'",
          evalInfo: { showLinkButton: true, description: "Scene frame range" },
          description: "Frame range to render and denoise. Examples: '47', '1-30', '3, 5-10, 47-327'" },
        { key: "chunk_size", type: "int32", default: 1, visible: "submission",
          description: "Number of frames to render in one Blender render task" },
        { key: "denoise_tasks", type: "int32", default: 4, propargs: { min: 1, max: 1000 }, visible: "submission",
          description: "Number of denoise tasks the sequence is split into (mcdenoise --shard i/n)" },
        { key: "mcdenoise", type: "string", default: "mcdenoise", visible: "submission",
          description: "The mcdenoise executable on the workers (the venv's bin/mcdenoise)" },
        { key: "denoise_quality", type: "string", default: "balanced", visible: "submission",
          description: "mcdenoise --quality: fast, balanced or high" },

        // render_output_root + add_path_components determine the value of render_output_path.
        { key: "render_output_root", type: "string", subtype: "dir_path", required: true, visible: "submission",
          description: "Base directory of where render output is stored. Will have some job-specific parts appended to it" },
        { key: "add_path_components", type: "int32", required: true, default: 0, propargs: { min: 0, max: 32 },
          visible: "submission",
          description: "Number of path components of the current blend file to use in the render output path" },
        { key: "render_output_path", type: "string", subtype: "file_path", editable: false,
          eval: "str(Path(abspath(settings.render_output_root), last_n_dir_parts(settings.add_path_components), jobname, '{timestamp}', '######'))",
          description: "Final file path of where render output will be saved" },

        // Automatically evaluated settings:
        { key: "blendfile", type: "string", required: true, description: "Path of the Blend file to render", visible: "web" },
        { key: "format", type: "string", required: true, eval: "C.scene.render.image_settings.file_format", visible: "web" },
        { key: "image_file_extension", type: "string", required: true, eval: "C.scene.render.file_extension",
          visible: "hidden", description: "File extension used when rendering images" },
        { key: "scene", type: "string", required: true, eval: "C.scene.name", visible: "web",
          description: "Name of the scene to render." },
    ],
};

// mcdenoise reads the passes of a multilayer EXR (colour, Denoising Albedo/Normal, Vector).
const multilayerFormats = new Set(["OPEN_EXR_MULTILAYER", "MULTILAYER"]);

function compileJob(job) {
    const settings = job.settings;
    if (!multilayerFormats.has(settings.format)) {
        throw `mcdenoise needs multilayer EXR renders (Output Properties > File Format: OpenEXR MultiLayer), not "${settings.format}"`;
    }
    const renderOutput = renderOutputPath(job);
    settings.render_output_path = renderOutput;
    const renderDir = path.dirname(renderOutput);

    const renderTasks = authorRenderTasks(settings, renderDir, renderOutput);
    for (const task of renderTasks) {
        job.addTask(task);
    }
    for (const task of authorDenoiseTasks(settings, renderDir, renderOutput)) {
        for (const renderTask of renderTasks) {
            task.addDependency(renderTask);
        }
        job.addTask(task);
    }
}

// Do field replacement on the render output path.
function renderOutputPath(job) {
    const renderPath = job.settings.render_output_path;
    if (!renderPath) {
        throw "no render_output_path setting!";
    }
    return renderPath.replace(/{([^}]+)}/g, (match, group0) =>
        group0 === "timestamp" ? formatTimestampLocal(job.created) : match);
}

function authorRenderTasks(settings, renderDir, renderOutput) {
    const tasks = [];
    const baseArgs = settings.scene ? ["--scene", settings.scene] : [];
    for (const chunk of frameChunker(settings.frames, settings.chunk_size)) {
        const task = author.Task(`render-${chunk}`, "blender");
        task.addCommand(author.Command("blender-render", {
            exe: "{blender}",
            exeArgs: "{blenderArgs}",
            argsBefore: [],
            blendfile: settings.blendfile,
            args: baseArgs.concat([
                "--render-output", path.join(renderDir, path.basename(renderOutput)),
                "--render-format", settings.format,
                "--render-frame", chunk.replaceAll("-", ".."), // Blender's frame range notation.
            ]),
        }));
        tasks.push(task);
    }
    return tasks;
}

// One task per shard of the whole frame range: `mcdenoise denoise <frames pattern> --frames
// <range> --shard i/n --out <renderDir>/denoised --keep-going`.
function authorDenoiseTasks(settings, renderDir, renderOutput) {
    const pattern = path.join(renderDir, path.basename(renderOutput) + settings.image_file_extension);
    const outDir = path.join(renderDir, "denoised");
    const count = Math.max(1, settings.denoise_tasks);
    const tasks = [];
    for (let i = 0; i < count; i++) {
        const task = author.Task(`denoise-${i + 1}-of-${count}`, "misc");
        task.addCommand(author.Command("exec", {
            exe: settings.mcdenoise,
            args: [
                "denoise", pattern,
                "--frames", settings.frames.replaceAll(" ", ""),
                "--shard", `${i}/${count}`,
                "--out", outDir,
                "--quality", settings.denoise_quality,
                "--keep-going", "--quiet",
            ],
        }));
        tasks.push(task);
    }
    return tasks;
}
