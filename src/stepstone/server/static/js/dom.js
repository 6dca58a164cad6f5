// Building the page. Everything a user wrote (event data, step output, error messages, ids)
// reaches the page as text: elements are made with createElement and filled with text nodes,
// never parsed as markup.

// h("a", {href: "#/runs", class: "x"}, "text", child): strings become text nodes.
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "style") el.style.cssText = value; // CSSOM: allowed by the page's CSP
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  return append(el, children);
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

// replaceChildren() would turn a null into the text "null": drop empty children first
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export const main = () => document.getElementById("main");

let toastTimer = null;
export function toast(message, bad) {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.className = bad ? "toast bad" : "toast";
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(clearToast, 4000);
}

// a toast belongs to the page it was raised on: moving to another page takes it down
export function clearToast() {
  clearTimeout(toastTimer);
  const el = document.getElementById("toast");
  el.hidden = true;
  el.textContent = "";
}

const COLLAPSED_LINES = 16;

// A JSON value, pretty-printed, with a copy button; a long one shows its first lines and
// "show all". `open` (a Set of keys) remembers what the user expanded across re-renders.
export function jsonView(value, options) {
  const opts = options || {};
  const text = value === undefined ? "undefined" : JSON.stringify(value, null, 2);
  return textView(text, opts);
}

export function textView(text, opts) {
  const lines = text.split("\n");
  const long = lines.length > COLLAPSED_LINES || text.length > 4000;
  const key = opts.key || null;
  let expanded = Boolean(key && opts.open && opts.open.has(key));
  const pre = h("pre", { class: `json ${opts.class || ""}` });
  const toggle = long ? h("button", { class: "link-button small", type: "button", "data-toggle": "" }) : null;
  const show = () => {
    const shown = expanded || !long ? text : `${lines.slice(0, COLLAPSED_LINES).join("\n").slice(0, 4000)}\n…`;
    pre.textContent = shown;
    pre.classList.toggle("collapsed", long && !expanded);
    if (toggle) toggle.textContent = expanded ? "show less" : `show all (${lines.length} lines)`;
  };
  if (toggle) {
    toggle.addEventListener("click", (e) => {
      e.stopPropagation();
      expanded = !expanded;
      if (key && opts.open) { if (expanded) opts.open.add(key); else opts.open.delete(key); }
      show();
    });
  }
  const copy = h("button", { class: "link-button small", type: "button", "data-copy": "" }, "copy");
  copy.addEventListener("click", async (e) => {
    e.stopPropagation();
    try {
      await navigator.clipboard.writeText(text);
      copy.textContent = "copied";
    } catch (err) {
      copy.textContent = "copy failed";
    }
    setTimeout(() => { copy.textContent = "copy"; }, 1500);
  });
  show();
  return h("div", { class: "json-view", id: opts.id || null }, pre, h("div", { class: "json-tools" }, toggle, copy));
}

export function errorBlock(error, options) {
  if (!error) return null;
  const opts = options || {};
  const title = `${error.name || "Error"}: ${error.message || ""}`;
  return h("div", { class: "error-box", id: opts.id || null },
    h("div", { class: "error-title" }, title),
    error.stack ? textView(error.stack, { class: "error", key: opts.key, open: opts.open }) : null);
}

// the JSON a textarea holds; undefined (said in `result`) when it is not JSON
export function readJson(textarea, result, what) {
  try {
    return JSON.parse(textarea.value || "{}");
  } catch (err) {
    fill(result, h("div", { class: "notice bad" }, `The ${what} is not valid JSON: ${err.message}`));
    return undefined;
  }
}

export const badge = (status) => h("span", { class: `badge ${status}` }, status);
