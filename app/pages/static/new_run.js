// The new-run form: builds a RunConfig, posts it, and shows the API's 422 and 403 errors next to the fields.
"use strict";
(() => {
  const { api, el, setState } = window.synflow;
  const form = document.getElementById("run-form");
  const componentsBox = document.getElementById("components");
  const addType = document.getElementById("f-add-type");
  const summary = document.getElementById("form-errors");
  const submitState = document.getElementById("submit-state");
  const preview = document.getElementById("config-preview");
  const COMMON = new Set(["type", "name", "weight"]);
  let catalogue = {};
  // The textarea line of each environment.start_blocks entry (blank lines are skipped), so that the
  // API's "environment.start_blocks.<i>" errors can name the line the user typed.
  let startBlockLines = [];

  function paramsHint(entry) {
    if (!entry || !entry.schema || !entry.schema.properties) return "";
    const required = new Set(entry.schema.required || []);
    const names = Object.keys(entry.schema.properties).filter((n) => !COMMON.has(n));
    if (!names.length) return "No parameters.";
    return "Parameters: " + names.map((n) => (required.has(n) ? `${n} (required)` : n)).join(", ") + ".";
  }

  function addComponent(type, params = {}, weight = 1) {
    const node = document.getElementById("component-template").content.firstElementChild.cloneNode(true);
    const entry = catalogue[type];
    node.dataset.type = type;
    node.querySelector(".component-type").textContent = type;
    node.querySelector(".component-desc").textContent = entry ? entry.description : "";
    node.querySelector(".c-weight").value = String(weight);
    node.querySelector(".c-params").value = JSON.stringify(params);
    node.querySelector(".c-params-hint").textContent = paramsHint(entry);
    node.querySelector(".remove-component").addEventListener("click", () => {
      node.remove();
      renumber();
    });
    componentsBox.append(node);
    renumber();
  }

  // Field ids and data-field paths follow the component's position, as the API's error paths do.
  function renumber() {
    [...componentsBox.children].forEach((node, i) => {
      node.dataset.index = String(i);
      node.dataset.field = `reward.components.${i}`;
      for (const input of node.querySelectorAll("[data-subfield]")) {
        const sub = input.dataset.subfield;
        input.id = `c${i}-${sub}`;
        input.previousElementSibling.setAttribute("for", input.id);
        input.dataset.field = sub === "params" ? `reward.components.${i}` : `reward.components.${i}.${sub}`;
      }
      node.querySelector(".remove-component").setAttribute("aria-label", `Remove component ${i + 1} (${node.dataset.type})`);
    });
    updatePreview();
  }

  function number(id) {
    const value = document.getElementById(id).value.trim();
    return value === "" ? null : Number(value);
  }

  function value(id) {
    return document.getElementById(id).value;
  }

  // One entry per non-blank line, trimmed; empty: no constraint (the key is left out).
  function startBlocks() {
    const entries = [];
    startBlockLines = [];
    value("f-start-blocks").split("\n").forEach((line, i) => {
      const entry = line.trim();
      if (!entry) return;
      entries.push(entry);
      startBlockLines.push(i + 1);
    });
    return entries;
  }

  // Checked: conditioning.preferences; the components box empty means every score component (null).
  function conditioning() {
    if (!document.getElementById("f-preferences").checked) return null;
    const names = value("f-pref-components").split(",").map((n) => n.trim()).filter(Boolean);
    return { preferences: { components: names.length ? names : null, dirichlet_alpha: number("f-pref-alpha") } };
  }

  // Builds the config; a parameters box that is not JSON is a client-side error on that field.
  function buildConfig() {
    const problems = [];
    const components = [...componentsBox.children].map((node, i) => {
      const component = { type: node.dataset.type };
      const text = node.querySelector(".c-params").value.trim();
      if (text) {
        try {
          const params = JSON.parse(text);
          if (typeof params !== "object" || Array.isArray(params) || params === null) throw new Error("not an object");
          Object.assign(component, params);
        } catch (err) {
          problems.push({ field: `reward.components.${i}`, message: `parameters must be a JSON object (${err.message})` });
        }
      }
      const name = node.querySelector(".c-name").value.trim();
      if (name) component.name = name;
      const weight = node.querySelector(".c-weight").value.trim();
      component.weight = weight === "" ? null : Number(weight);
      return component;
    });
    const reward = { components, aggregation: value("f-aggregation"), beta: number("f-beta") };
    if (number("f-budget") !== null) reward.budget = number("f-budget");
    const loss = { divergence: value("f-divergence"), log_z: value("f-log-z") };
    if (loss.divergence === "alpha") {
      if (value("f-alpha-mode") === "schedule") {
        loss.alpha_schedule = {
          start: number("f-alpha-start"), end: number("f-alpha-end"),
          steps: number("f-alpha-steps"), kind: value("f-alpha-kind"),
        };
      } else {
        loss.alpha = number("f-alpha");
      }
    }
    const environment = {
      max_reactions: number("f-max-reactions"),
      building_blocks: value("f-library") || null, templates: value("f-templates") || null,
    };
    // Left empty, the preset decides (sample: every block, exact; optimise: a subsample of 64).
    const blocks = number("f-blocks-per-template");
    if (blocks !== null) environment.blocks_per_template = blocks;
    const starts = startBlocks();
    if (starts.length) environment.start_blocks = starts;
    const scaffold = value("f-scaffold").trim();
    if (scaffold) environment.scaffold = scaffold;
    const training = {
      steps: number("f-steps"), batch_size: number("f-batch"), device: value("f-device"),
      lr: number("f-lr"), seed: number("f-seed"), log_every: number("f-log-every"),
    };
    const model = { hidden: number("f-hidden"), layers: number("f-layers") };
    const name = value("f-name").trim();
    const preset = value("f-preset");
    const config = { preset, name: name || "run", reward, loss, environment, training, model };
    const conditioned = conditioning();
    if (conditioned) config.conditioning = conditioned;
    return { config, problems };
  }

  function updatePreview() {
    preview.textContent = JSON.stringify(buildConfig().config, null, 2);
  }

  function clearErrors() {
    for (const node of form.querySelectorAll(".field-error")) node.textContent = "";
    for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
    setState(summary, "error", "");
  }

  // The API names fields like "training.steps"; the closest element with that data-field
  // (or an ancestor path) gets the message, anything unplaced goes to the summary.
  function showErrors(errors) {
    const unplaced = [];
    let first = null;
    for (let { field, message } of errors) {
      const parts = String(field || "").split(".");
      let target = null;
      while (parts.length && !target) {
        target = form.querySelector(`[data-field="${CSS.escape(parts.join("."))}"]`);
        if (!target) parts.pop();
      }
      if (!target) { unplaced.push(`${field}: ${message}`); continue; }
      const entry = /^environment\.start_blocks\.(\d+)$/.exec(String(field));
      if (entry && startBlockLines[Number(entry[1])]) message = `line ${startBlockLines[Number(entry[1])]}: ${message}`;
      const box = target.classList.contains("component") ? target.querySelector(".c-params").closest(".field")
        : target.closest(".field") || target.parentElement;
      const slot = box.querySelector(".field-error") || document.getElementById("components-error");
      slot.textContent = slot.textContent ? `${slot.textContent}; ${message}` : message;
      const input = box.querySelector("input, select, textarea");
      if (input) {
        input.setAttribute("aria-invalid", "true");
        if (slot.id) input.setAttribute("aria-describedby", slot.id);
        first = first || input;
      }
    }
    const count = errors.length;
    setState(summary, "error", `The run was not started: ${count} problem${count === 1 ? "" : "s"} to fix.`
      + (unplaced.length ? " " + unplaced.join("; ") : ""));
    if (first) first.focus();
  }

  function toggleAlpha() {
    const isAlpha = value("f-divergence") === "alpha";
    const schedule = value("f-alpha-mode") === "schedule";
    document.getElementById("f-alpha-mode").disabled = !isAlpha;
    for (const node of form.querySelectorAll(".alpha-only .field")) {
      const show = isAlpha && (node.classList.contains("alpha-schedule") ? schedule : !schedule);
      node.hidden = !show;
    }
  }

  function togglePreferences() {
    const on = document.getElementById("f-preferences").checked;
    for (const node of document.querySelectorAll("#preferences-box .field")) node.hidden = !on;
  }

  async function loadLibraries() {
    const fill = async (path, select) => {
      try {
        for (const lib of await api(path)) {
          if (lib.bundled || !lib.path) continue;
          select.append(el("option", { value: lib.path, text: `${lib.name} (${lib.size} entries)` }));
        }
      } catch (err) {
        select.closest(".field").querySelector(".field-error").textContent =
          `Uploaded entries could not be listed (${err.message}); the bundled default works.`;
      }
    };
    // One after the other: the service registers the bundled entries on the first listing.
    await fill("/libraries", document.getElementById("f-library"));
    await fill("/template-sets", document.getElementById("f-templates"));
  }

  async function init() {
    try {
      const entries = await api("/catalogue/reward-components");
      catalogue = Object.fromEntries(entries.map((e) => [e.type, e]));
    } catch (err) {
      setState(summary, "error", `The reward catalogue could not be loaded: ${err.message}`);
    }
    for (const type of Object.keys(catalogue)) addType.append(el("option", { value: type, text: type }));
    addComponent("qed");
    addComponent("sa");
    toggleAlpha();
    togglePreferences();
    loadLibraries();
  }

  document.getElementById("add-component").addEventListener("click", () => addComponent(addType.value));
  document.getElementById("f-divergence").addEventListener("change", toggleAlpha);
  document.getElementById("f-alpha-mode").addEventListener("change", toggleAlpha);
  document.getElementById("f-preferences").addEventListener("change", togglePreferences);
  form.addEventListener("input", updatePreview);
  form.addEventListener("change", updatePreview);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    const { config, problems } = buildConfig();
    if (problems.length) { showErrors(problems); return; }
    const button = document.getElementById("submit");
    button.disabled = true;
    submitState.textContent = "Starting…";
    try {
      const run = await api("/runs", { method: "POST", json: config });
      submitState.textContent = "Started.";
      window.location.assign(`/runs/${run.id}`);
    } catch (err) {
      submitState.textContent = "";
      if ((err.status === 422 || err.status === 403) && err.errors.length) showErrors(err.errors);
      else setState(summary, "error", `The run was not started: ${err.message}`);
    } finally {
      button.disabled = false;
    }
  });
  init();
})();
