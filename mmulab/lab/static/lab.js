"use strict";
// The lab's page: one websocket per terminal (ws/boot/<case>, ws/shell/<variant>). The server sends the console
// as binary messages and events as JSON text; a shell's keystrokes go back as binary messages. Closing the tab
// closes the sockets, and the server stops their QEMUs.
const lab = {panes: new Map()};
window.lab = lab;

function socketUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/${path}`;
}

function closeAll() {
  for (const pane of lab.panes.values()) pane.close();
  lab.panes.clear();
  document.getElementById("panes").replaceChildren();
}

class Pane {
  constructor(name, title, path, interactive) {
    this.name = name;
    this.box = document.createElement("section");
    this.box.className = "pane";
    this.box.dataset.name = name;
    const heading = document.createElement("h3");
    heading.textContent = title;
    this.state = document.createElement("div");
    this.state.className = "state";
    this.state.textContent = "connecting";
    const host = document.createElement("div");
    host.className = "term";
    this.chart = document.createElement("div");
    this.chart.className = "chart";
    this.box.append(heading, this.state, host, this.chart);
    document.getElementById("panes").append(this.box);
    this.term = new Terminal({convertEol: true, scrollback: 5000, fontSize: 12, disableStdin: !interactive});
    this.fit = new FitAddon.FitAddon();
    this.term.loadAddon(this.fit);
    this.term.open(host);
    this.fit.fit();
    this.socket = new WebSocket(socketUrl(path));
    this.socket.binaryType = "arraybuffer";
    this.socket.onmessage = (message) => this.receive(message.data);
    this.socket.onclose = () => { if (!this.box.dataset.ended) this.show("closed", ""); };
    if (interactive) {
      const encoder = new TextEncoder();
      this.term.onData((data) => {
        if (this.socket.readyState === WebSocket.OPEN) this.socket.send(encoder.encode(data));
      });
    }
  }

  show(text, kind) {
    this.state.textContent = text;
    this.state.className = `state ${kind}`;
  }

  receive(data) {
    if (typeof data !== "string") {
      this.term.write(new Uint8Array(data));
      return;
    }
    const event = JSON.parse(data);
    if (event.event === "queued") {
      this.box.dataset.queued = event.place;
      this.show(`queued: place ${event.place} (the lab runs a few QEMUs at once)`, "");
    } else if (event.event === "started") {
      this.box.dataset.started = "1";
      this.show("running", "");
    } else if (event.event === "verdict") {
      this.box.dataset.verdict = event.outcome;
      this.box.dataset.passed = event.passed ? "1" : "0";
      this.show(event.line, event.passed ? "pass" : "fail");
    } else if (event.event === "chart") {
      const image = document.createElement("img");
      image.alt = `the chart of ${this.name}`;
      image.src = URL.createObjectURL(new Blob([event.svg], {type: "image/svg+xml"}));
      this.chart.replaceChildren(image);
      this.box.dataset.chart = "1";
    } else if (event.event === "ended") {
      this.box.dataset.ended = event.reason;
      if (!this.box.dataset.verdict) this.show(`ended: ${event.reason}`, "");
    }
  }

  text() {
    const buffer = this.term.buffer.active;
    const lines = [];
    for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i).translateToString(true));
    return lines.join("\n");
  }

  close() { this.socket.close(); this.term.dispose(); }
}

lab.text = (name) => lab.panes.get(name).text();

function column(variant) { return variant.startsWith("nommu") ? 0 : 1; }

function openDemo(demo) {
  closeAll();
  document.getElementById("about").textContent = demo.description;
  // NOMMU on the left, MMU on the right, each row one build and QEMU option.
  const cases = [...demo.cases].sort((a, b) =>
    (a.build + a.qemu).localeCompare(b.build + b.qemu) || column(a.variant) - column(b.variant));
  for (const c of cases) {
    const title = `${c.case}: ${c.build} on the ${c.variant} kernel (${c.qemu} QEMU, expect ${c.expect})`;
    lab.panes.set(c.case, new Pane(c.case, title, `ws/boot/${encodeURIComponent(c.case)}`, false));
  }
}

function openShells(shells) {
  closeAll();
  document.getElementById("about").textContent =
    "A busybox shell on each kernel: click a terminal to type into it (try cat /proc/self/maps).";
  for (const variant of shells) {
    const pane = new Pane(variant, `shell on the ${variant} kernel`, `ws/shell/${encodeURIComponent(variant)}`, true);
    lab.panes.set(variant, pane);
  }
  const first = lab.panes.values().next().value;
  if (first) first.term.focus();
}

async function start() {
  const catalogue = await (await fetch("catalogue.json")).json();
  document.getElementById("limits").textContent = `at most ${catalogue.machines} QEMU at once; more wait in line`;
  const list = document.getElementById("demos");
  for (const demo of catalogue.demos) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.id = `demo-${demo.name}`;
    button.textContent = demo.name;
    button.onclick = () => {
      for (const other of list.querySelectorAll("button")) other.classList.remove("chosen");
      button.classList.add("chosen");
      openDemo(demo);
    };
    const about = document.createElement("small");
    about.textContent = demo.description;
    item.append(button, about);
    list.append(item);
  }
  document.getElementById("shell").onclick = () => openShells(catalogue.shells);
  window.addEventListener("resize", () => { for (const pane of lab.panes.values()) pane.fit.fit(); });
  document.body.dataset.ready = "1";
}

start();
