// Compile a Flamenco job type script outside Flamenco Manager, for tests and for checking a
// job before submitting it: `node compile_job.js SCRIPT.js SETTINGS.json` prints the tasks as
// JSON ({name, type, commands: [{name, parameters}], dependencies: [task names]}).
//
// It provides what the Manager gives job scripts (author.Task/author.Command, job.addTask,
// task.addCommand/addDependency, path.*, frameChunker, formatTimestampLocal) in plain Node;
// frame chunks are consecutive runs of at most chunk_size frames, named "a-b" (or "a").
"use strict";
const fs = require("fs");
const nodePath = require("path");
const vm = require("vm");

function parseFrames(text) {
    const frames = [];
    for (const part of String(text).split(",").map((s) => s.trim()).filter(Boolean)) {
        const m = part.match(/^(-?\d+)(?:-(-?\d+))?$/);
        if (!m) throw `bad frame range ${part}`;
        const first = Number(m[1]), last = m[2] === undefined ? first : Number(m[2]);
        for (let f = first; f <= last; f++) frames.push(f);
    }
    return [...new Set(frames)].sort((a, b) => a - b);
}

function frameChunker(text, chunkSize) {
    const frames = parseFrames(text), chunks = [];
    let run = [];
    const flush = () => { if (run.length) chunks.push(run.length > 1 ? `${run[0]}-${run[run.length - 1]}` : `${run[0]}`); run = []; };
    for (const f of frames) {
        if (run.length && (f !== run[run.length - 1] + 1 || run.length >= chunkSize)) flush();
        run.push(f);
    }
    flush();
    return chunks;
}

const tasks = [];
const author = {
    Task(name, type) {
        const task = { name, type, commands: [], dependencies: [] };
        task.addCommand = (command) => task.commands.push(command);
        task.addDependency = (other) => task.dependencies.push(other.name);
        return task;
    },
    Command(name, parameters) { return { name, parameters }; },
};
const path = {
    join: (...parts) => nodePath.posix.join(...parts),
    dirname: (p) => nodePath.posix.dirname(p),
    basename: (p) => nodePath.posix.basename(p),
    stem: (p) => nodePath.posix.parse(p).name,
};

const [script, settingsFile] = process.argv.slice(2);
const job = { settings: JSON.parse(fs.readFileSync(settingsFile, "utf8")), created: new Date(0), addTask: (t) => tasks.push(t) };
const context = vm.createContext({ author, path, frameChunker, formatTimestampLocal: () => "1970-01-01_000000", print: () => {} });
vm.runInContext(fs.readFileSync(script, "utf8") + "\ncompileJob(job);", Object.assign(context, { job }));
process.stdout.write(JSON.stringify(tasks.map(({ name, type, commands, dependencies }) => ({ name, type, commands, dependencies }))));
