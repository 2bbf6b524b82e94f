// The runs page's "Import generator" form: uploads a .safetensors generator file to POST /generators
// and shows the new run, or the server's reason for refusing the file (e.g. another library).
"use strict";
(() => {
  const { el, setState } = window.synflow;
  const form = document.getElementById("import-form");
  const state = document.getElementById("import-state");
  const submit = document.getElementById("import-submit");

  async function importGenerator(event) {
    event.preventDefault();
    const file = document.getElementById("import-file").files[0];
    if (!file) { setState(state, "error", "Choose a generator file first."); return; }
    const body = new FormData();
    body.append("file", file);
    const name = document.getElementById("import-name").value.trim();
    if (name) body.append("name", name);
    const token = window.localStorage.getItem("synflow-token");
    submit.disabled = true;
    setState(state, "", `Checking ${file.name}…`);
    try {
      // fetch sets the multipart boundary itself: no Content-Type header here
      const response = await fetch("/api/v1/generators", {
        method: "POST", body, headers: token ? { Authorization: `Bearer ${token}` } : {},
      });
      const answer = await response.json().catch(() => ({}));
      if (!response.ok) {
        setState(state, "error", `Not imported: ${answer.message || `HTTP ${response.status}`}`);
        return;
      }
      setState(state, "ok", "");
      state.hidden = false;
      state.replaceChildren("Imported as ", el("a", { href: `/runs/${answer.id}`, text: answer.name }),
        " (a finished run: sample from it with POST /api/v1/runs/{id}/sample).");
      form.reset();
    } catch (err) {
      setState(state, "error", `Not imported: the server cannot be reached (${err.message}).`);
    } finally {
      submit.disabled = false;
    }
  }

  form.addEventListener("submit", importGenerator);
})();
