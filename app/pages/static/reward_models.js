// Reward models: the list with cross-validated metrics, each model's versions, and the CSV upload.
"use strict";
(() => {
  const { api, el, fmt, fmtTime, setState } = window.synflow;
  const table = document.getElementById("models");
  const state = document.getElementById("models-state");
  const versionsSection = document.getElementById("versions-section");
  const form = document.getElementById("upload-form");
  const uploadState = document.getElementById("upload-state");
  const uploadErrors = document.getElementById("upload-errors");

  function chosenMetrics(model) {
    return model.cv[model.estimator] || {};
  }

  function modelRow(model) {
    const m = chosenMetrics(model);
    const link = el("a", { href: `#${encodeURIComponent(model.name)}`, text: model.reference,
                           onclick: (event) => { event.preventDefault(); showVersions(model.name); } });
    return el("tr", { "data-model": model.name },
      el("td", {}, link),
      el("td", { class: "num", text: fmt(model.versions) }),
      el("td", { text: model.estimator.replace("_", " ") }),
      el("td", { text: model.direction }),
      el("td", { class: "num", text: fmt(model.n_molecules) }),
      el("td", { class: "num", text: fmt(model.n_duplicates) }),
      el("td", { class: "num", text: fmt(model.n_rejected) }),
      el("td", { class: "num", text: fmt(m.rmse) }),
      el("td", { class: "num", text: fmt(m.r2) }),
      el("td", { class: "num", text: fmt(m.spearman) }),
      el("td", { text: fmtTime(model.created_at) }));
  }

  // One row per (version, candidate estimator): the chosen one marked, so the comparison is visible.
  function versionRows(model) {
    return Object.entries(model.cv).map(([name, m]) => el("tr",
      { class: name === model.estimator ? "chosen" : "", "data-reference": model.reference },
      el("td", { text: model.reference }),
      el("td", { text: name.replace("_", " ") + (name === model.estimator ? " (chosen)" : "") }),
      el("td", { class: "num", text: fmt(m.rmse) }),
      el("td", { class: "num", text: fmt(m.mae) }),
      el("td", { class: "num", text: fmt(m.r2) }),
      el("td", { class: "num", text: fmt(m.spearman) }),
      el("td", { class: "num", text: fmt(model.folds) }),
      el("td", { text: `${model.value_column} (${model.direction} is better), ${fmt(model.n_rows)} rows` }),
      el("td", { text: fmtTime(model.created_at) })));
  }

  async function showVersions(name) {
    try {
      const versions = await api(`/reward-models/${encodeURIComponent(name)}`);
      document.getElementById("versions-title").textContent = `Versions of ${name}`;
      versionsSection.querySelector("tbody").replaceChildren(...versions.reverse().flatMap(versionRows));
      versionsSection.hidden = false;
    } catch (err) {
      setState(state, "error", `The versions of ${name} could not be loaded: ${err.message}`);
    }
  }

  async function load() {
    try {
      const models = await api("/reward-models");
      table.querySelector("tbody").replaceChildren(...models.map(modelRow));
      table.hidden = models.length === 0;
      setState(state, "", models.length ? "" : "No reward models yet: upload measurements below.");
      return models;
    } catch (err) {
      setState(state, "error", `Reward models could not be loaded: ${err.message}`);
      return [];
    }
  }

  function clearErrors() {
    for (const node of form.querySelectorAll(".field-error")) node.textContent = "";
    for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
    setState(uploadErrors, "", "");
  }

  function showErrors(err) {
    const loose = [];
    for (const item of err.errors.length ? err.errors : [{ field: "", message: err.message }]) {
      const input = form.querySelector(`[data-field="${item.field}"]`);
      if (input) {
        input.setAttribute("aria-invalid", "true");
        input.closest(".field").querySelector(".field-error").textContent = item.message;
      } else {
        loose.push(item.message);
      }
    }
    setState(uploadErrors, "error", `Not stored. ${loose.join("; ")}`.trim());
  }

  function showResult(model) {
    const m = chosenMetrics(model);
    document.getElementById("result-title").textContent = `Stored ${model.reference}`;
    document.getElementById("result-summary").textContent =
      `${model.estimator.replace("_", " ")} chosen by ${model.folds}-fold cross-validation ` +
      `(RMSE ${fmt(m.rmse)}, R² ${fmt(m.r2)}, Spearman ${fmt(m.spearman)}) on ${fmt(model.n_molecules)} molecules; ` +
      `${fmt(model.n_duplicates)} duplicate rows averaged, ${fmt(model.n_rejected)} rows rejected.`;
    const component = { type: "assay_model", model: model.reference, uncertainty_bonus: 0.0 };
    document.getElementById("result-component").textContent = JSON.stringify(component, null, 2);
    const rejected = document.getElementById("rejected");
    rejected.querySelector("tbody").replaceChildren(...model.rejected_rows.map((r) => el("tr", {},
      el("td", { class: "num", text: fmt(r.line) }),
      el("td", { class: "smiles", text: r.smiles || "–" }),
      el("td", { text: r.reason }))));
    rejected.hidden = model.rejected_rows.length === 0;
    document.getElementById("upload-result").hidden = false;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    const button = document.getElementById("upload");
    button.disabled = true;
    setState(uploadState, "", "Fitting: cross-validating a random forest and a Gaussian process…");
    try {
      const model = await api("/reward-models", { method: "POST", body: new FormData(form) });
      setState(uploadState, "", "");
      showResult(model);
      await load();
      await showVersions(model.name);
    } catch (err) {
      setState(uploadState, "", "");
      showErrors(err);
    } finally {
      button.disabled = false;
    }
  });

  load();
})();
