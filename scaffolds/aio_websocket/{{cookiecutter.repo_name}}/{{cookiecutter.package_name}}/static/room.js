// Join the room over a websocket: show what everyone says and who is here.
(function () {
  "use strict";
  var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
  var socket = new WebSocket(scheme + window.location.host + "/room");
  socket.binaryType = "arraybuffer";
  var status = document.getElementById("status");
  var log = document.getElementById("log");
  var input = document.getElementById("message");
  var counts = {};  // worker pid -> {people, seen}: each worker tells its own

  function show(who, text, kind) {
    var item = document.createElement("li");
    var label = document.createElement("span");
    label.className = "who";
    label.textContent = who;
    var body = document.createElement("span");
    body.className = kind || "text";
    body.textContent = text;
    item.append(label, body);
    log.appendChild(item);
  }

  function showPeople() {  // forget a worker silent for three heartbeats
    var total = 0, now = Date.now();
    Object.keys(counts).forEach(function (worker) {
      if (now - counts[worker].seen > 6000) { delete counts[worker]; }
      else { total += counts[worker].people; }
    });
    document.getElementById("people").textContent =
      total + (total === 1 ? " person" : " people") + " here";
  }
  setInterval(showPeople, 1000);

  socket.addEventListener("open", function () {
    status.textContent = "connected"; status.className = "connected";
  });
  socket.addEventListener("close", function (event) {
    status.textContent = "closed (" + event.code + ")"; status.className = "closed";
  });
  socket.addEventListener("message", function (event) {
    if (typeof event.data !== "string") {  // binary: its size and first bytes
      var bytes = new Uint8Array(event.data);
      var hex = Array.from(bytes.slice(0, 16), function (b) {
        return b.toString(16).padStart(2, "0");
      }).join(" ");
      show("binary", bytes.length + " bytes: " + hex + (bytes.length > 16 ? " …" : ""), "binary");
      return;
    }
    var data = JSON.parse(event.data);
    if ("you" in data) {
      document.getElementById("worker").textContent = data.you;
    } else if ("people" in data) {
      counts[data.worker] = {people: data.people, seen: Date.now()};
      showPeople();
    } else if ("error" in data) {
      show("not sent", data.error, "error");
    } else {
      show("worker " + data.worker, data.text);
    }
  });

  function send(asBytes) {
    if (input.value && socket.readyState === WebSocket.OPEN) {
      socket.send(asBytes ? new TextEncoder().encode(input.value) : input.value);
      input.value = "";
    }
  }
  document.getElementById("form").addEventListener("submit", function (event) {
    event.preventDefault();
    send(false);
  });
  document.getElementById("send-bytes").addEventListener("click", function () { send(true); });
})();
