// Open a websocket to /echo, send what the user types, show what comes back.
(function () {
  "use strict";
  var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
  var socket = new WebSocket(scheme + window.location.host + "/echo");
  var status = document.getElementById("status");
  var log = document.getElementById("log");
  var input = document.getElementById("message");

  function show(text) {
    var item = document.createElement("li");
    item.textContent = text;
    log.appendChild(item);
  }

  socket.addEventListener("open", function () { status.textContent = "connected"; });
  socket.addEventListener("close", function () { status.textContent = "closed"; });
  socket.addEventListener("message", function (event) { show(event.data); });

  document.getElementById("form").addEventListener("submit", function (event) {
    event.preventDefault();
    if (input.value && socket.readyState === WebSocket.OPEN) {
      socket.send(input.value);
      input.value = "";
    }
  });
})();
