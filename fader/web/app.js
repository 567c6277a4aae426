// The faders: one slider per attribute; a move asks the server to decode (the photo was
// encoded once, at upload). Only the latest request is shown: earlier ones are aborted.
"use strict";

const $ = (id) => document.getElementById(id);
let photo = null;      // the server's answer for the current photo: id, attributes, values, range
let pending = null;    // the AbortController of the decode in flight
let shownUrl = null;   // the object URL of the edit on screen

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function settings() {
  const query = new URLSearchParams();
  for (const input of document.querySelectorAll("#faders input")) query.set(input.name, input.value);
  return query.toString();
}

async function refresh() {
  if (!photo) return;
  if (pending) pending.abort();
  pending = new AbortController();
  const query = settings();
  try {
    const response = await fetch(`/api/photos/${photo.id}/edit.png?${query}`, { signal: pending.signal });
    if (!response.ok) throw new Error((await response.json()).error);
    const url = URL.createObjectURL(await response.blob());
    $("edited").src = url;
    if (shownUrl) URL.revokeObjectURL(shownUrl);
    shownUrl = url;
    $("edited").dataset.query = query;
    $("download").href = url;
    $("download-pasted").href = `/api/photos/${photo.id}/pasted.png?${query}`;
  } catch (problem) {
    if (problem.name !== "AbortError") status(String(problem.message || problem), true);
  }
}

function buildFaders() {
  const box = $("faders");
  box.replaceChildren();
  const [low, high] = photo.range;
  for (const name of photo.attributes) {
    const label = document.createElement("label");
    label.textContent = name.replaceAll("_", " ");
    label.htmlFor = `fader-${name}`;
    const input = document.createElement("input");
    Object.assign(input, { type: "range", id: `fader-${name}`, name, min: low, max: high, step: 0.05 });
    input.value = photo.values[name];
    const value = document.createElement("output");
    value.textContent = Number(input.value).toFixed(2);
    input.addEventListener("input", () => { value.textContent = Number(input.value).toFixed(2); refresh(); });
    box.append(label, input, value);
  }
}

async function open(response) {
  const answer = await response.json();
  if (!response.ok) { status(answer.error, true); return; }
  photo = answer;
  $("original").src = `/api/photos/${photo.id}/original.png`;
  $("aligned").src = `/api/photos/${photo.id}/aligned.png`;
  $("download-pasted").hidden = !photo.aligned;
  buildFaders();
  $("workspace").hidden = false;
  status(photo.aligned ? "Aligned and encoded: slide away." : "Encoded: slide away.");
  await refresh();
}

$("upload").addEventListener("change", async () => {
  const file = $("upload").files[0];
  if (!file) return;
  status(`Aligning ${file.name} ...`);
  const form = new FormData();
  form.append("photo", file);
  try {
    await open(await fetch("/api/photos", { method: "POST", body: form }));
  } catch (problem) {
    status(`The upload failed: ${problem}`, true);
  }
  $("upload").value = "";
});

$("use-example").addEventListener("click", async () => {
  status("Encoding the example ...");
  await open(await fetch(`/api/examples/${$("example").value}`, { method: "POST" }));
});

$("reset").addEventListener("click", () => {
  for (const input of document.querySelectorAll("#faders input")) {
    input.value = photo.values[input.name];
    input.dispatchEvent(new Event("input"));
  }
});

(async () => {
  const info = await (await fetch("/api/info")).json();
  if (info.examples > 0) {
    for (let i = 0; i < info.examples; i++) $("example").add(new Option(`test image ${i + 1}`, i));
    $("example-picker").hidden = false;
  }
  if (!info.classifier) status("No classifier: the photo's own attributes start at 0.");
})();
