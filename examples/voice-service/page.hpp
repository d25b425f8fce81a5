#pragma once
// The test page served at "/": the seed's JavaScript test, run against whatever host served it.
#include <string_view>

namespace voice {

inline constexpr std::string_view test_page = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>voice-service test page</title>
<style>
  body { font-family: sans-serif; margin: 1.5em; max-width: 60em; }
  #log { background: #f4f4f4; border: 1px solid #ccc; padding: .5em; height: 22em; overflow-y: auto;
         font-family: monospace; font-size: 90%; white-space: pre-wrap; }
  .err { color: #b00; } .in { color: #064; } .out { color: #036; }
  label { margin-right: 1em; }
</style>
</head>
<body>
<h1>voice-service WebSocket test</h1>
<p>
  <label>language <select id="language"><option>ar</option><option>en</option></select></label>
  <label>voice <select id="voice_type"><option>female</option><option>male</option></select></label>
  <button id="connect">reconnect</button>
  status: <strong id="status" data-testid="status">connecting</strong>
</p>
<p>URL: <code id="url"></code></p>
<p>
  <input id="text" size="50" placeholder="text to send" value="hello">
  <button id="send">send text</button>
  <button id="ping">ping</button>
</p>
<div id="log" data-testid="log"></div>
<p id="player" data-testid="player"></p>
<script>
'use strict';
let ws = null;
let audioParts = [];
// Every event, in order, for automated tests (and curious users in the console): received JSON
// messages as parsed, binary ones as {type: 'binary', bytes}, and the reply player's media events.
window.__events = [];
const $ = (id) => document.getElementById(id);

function log(cls, text) {
  const line = document.createElement('div');
  line.className = cls;
  line.textContent = new Date().toISOString().substring(11, 23) + ' ' + text;
  $('log').appendChild(line);
  $('log').scrollTop = $('log').scrollHeight;
}

function wsUrl() {
  // The URL is built from the page's own origin, so it goes through whatever proxy served the page.
  const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
  return scheme + location.host + '/api/v1/ws/simple-voice-chat?language=' +
         encodeURIComponent($('language').value) + '&voice_type=' + encodeURIComponent($('voice_type').value);
}

function send(obj) {
  const text = JSON.stringify(obj);
  ws.send(text);
  log('out', '> ' + text);
}

function connect() {
  if (ws) { ws.close(); }
  audioParts = [];
  const url = wsUrl();
  $('url').textContent = url;
  $('status').textContent = 'connecting';
  ws = new WebSocket(url);
  ws.binaryType = 'blob';
  ws.onopen = () => {
    $('status').textContent = 'connected';
    window.__events.push({type: 'ws_open', url: url});
    log('in', 'Connected!');
    send({type: 'ping'});
  };
  ws.onmessage = (e) => {
    if (typeof e.data !== 'string') {
      audioParts.push(e.data);
      window.__events.push({type: 'binary', bytes: e.data.size});
      log('in', '< <binary ' + e.data.size + ' bytes>');
      return;
    }
    log('in', '< ' + e.data);
    let msg;
    try { msg = JSON.parse(e.data); } catch (err) { log('err', 'not JSON: ' + err); return; }
    window.__events.push(msg);
    if (msg.type === 'pong') { $('status').textContent = 'pong received'; }
    if (msg.type === 'audio_end') {
      const blob = new Blob(audioParts, {type: 'audio/wav'});
      audioParts = [];
      log('in', 'playing ' + blob.size + ' bytes of audio');
      const audio = new Audio(URL.createObjectURL(blob));
      // The player stays on the page (the last reply), so it can be replayed and inspected.
      audio.controls = true;
      audio.dataset.testid = 'reply-audio';
      audio.dataset.bytes = String(blob.size);
      for (const name of ['loadedmetadata', 'playing', 'ended', 'error']) {
        audio.addEventListener(name, () => window.__events.push(
            {type: 'media_' + name, duration: audio.duration, error: audio.error ? audio.error.code : null}));
      }
      $('player').replaceChildren(audio);
      audio.play().then(() => { $('status').textContent = 'playing reply'; })
                  .catch((err) => {
                    window.__events.push({type: 'play_error', message: String(err)});
                    log('err', 'cannot play audio: ' + err);
                  });
    }
  };
  ws.onerror = (e) => { log('err', 'Error: WebSocket error (see the browser console)'); };
  ws.onclose = (e) => {
    $('status').textContent = 'closed ' + e.code;
    window.__events.push({type: 'ws_close', code: e.code, reason: e.reason});
    log(e.code === 1000 ? 'in' : 'err', 'closed: code ' + e.code + (e.reason ? ' (' + e.reason + ')' : ''));
  };
}

$('connect').onclick = connect;
$('ping').onclick = () => send({type: 'ping'});
$('send').onclick = () => send({type: 'text', text: $('text').value});
$('text').addEventListener('keydown', (e) => { if (e.key === 'Enter') { $('send').click(); } });
connect();
</script>
</body>
</html>
)html";

}  // namespace voice
