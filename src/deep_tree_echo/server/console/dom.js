// Building DOM nodes from data without ever parsing it as HTML: text goes in as text nodes.
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = String(value);
    else if (key.startsWith('on') && typeof value === 'function') {
      node.addEventListener(key.slice(2), value);
    } else node.setAttribute(key, value === true ? '' : String(value));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

export function $(id) {
  return document.getElementById(id);
}

export function fmtNumber(value, digits = 3) {
  return typeof value === 'number' && Number.isFinite(value) ? value.toFixed(digits) : '–';
}

export function fmtMs(seconds) {
  return typeof seconds === 'number' ? `${(seconds * 1000).toFixed(1)} ms` : '–';
}

export function fmtPercent(fraction) {
  return typeof fraction === 'number' ? `${(fraction * 100).toFixed(1)} %` : '–';
}

export function fmtTime(unixSeconds) {
  if (typeof unixSeconds !== 'number') return '–';
  return new Date(unixSeconds * 1000).toLocaleTimeString();
}

export function contentOf(data) {
  if (!data || typeof data !== 'object') return String(data ?? '');
  const content = data.content;
  return typeof content === 'string' ? content : JSON.stringify(content ?? data);
}
