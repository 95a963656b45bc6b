// phoenix.js on two nodes that share broadcasts through Redis.
//
// Usage: node tests/js/redis_two_nodes.js <socket url of node a> <socket url of node b>
//
// A client on each node joins room:lobby. The client on node a pushes new_msg
// "hello from a", then new_msg "fence". Both messages take the same road to each
// client (node a's local dispatch, or Redis to node b), one after the other, so
// once both clients have seen "fence", the new_msg events each one received tell
// whether "hello" arrived exactly once, and in order. Prints
// {"a": [...], "b": [...], "connections": {...}, "error": null} (event and payload
// of each new_msg) and exits 0, or prints what it had and exits 1 after 10 s.
//
// Node 20 has no global WebSocket, and phoenix.js would then quietly fall back to
// LongPoll; so the `ws` package's class is passed as the transport, and the output
// says which class each connection really is.
"use strict"

const WebSocket = require("ws")
const {Socket} = require("phoenix")

const [urlA, urlB] = process.argv.slice(2)
const received = {a: [], b: []}
const connections = {a: null, b: null}
const sockets = []

function finish(code, error) {
  for (const socket of sockets) socket.disconnect()
  process.stdout.write(JSON.stringify({...received, connections, error: error || null}) + "\n")
  process.exit(code)
}

const guard = setTimeout(() => finish(1, "timed out"), 10000)

function joinOn(name, url) {
  const socket = new Socket(url, {transport: WebSocket, params: {user_id: `js-${name}`}})
  sockets.push(socket)
  socket.onOpen(() => { connections[name] = socket.conn instanceof WebSocket ? "WebSocket" : socket.conn.constructor.name })
  socket.connect()
  const channel = socket.channel("room:lobby", {user: `js-${name}`})
  let sawFence
  const fence = new Promise(resolve => { sawFence = resolve })
  channel.on("new_msg", payload => {
    received[name].push({event: "new_msg", payload})
    if (payload.body === "fence") sawFence()
  })
  const joined = new Promise((resolve, reject) => {
    channel.join()
      .receive("ok", () => resolve(channel))
      .receive("error", reply => reject(new Error(`join on ${name} refused: ${JSON.stringify(reply)}`)))
      .receive("timeout", () => reject(new Error(`join on ${name} timed out`)))
  })
  return {joined, fence}
}

function push(channel, payload) {
  return new Promise((resolve, reject) => {
    channel.push("new_msg", payload)
      .receive("ok", resolve)
      .receive("error", reply => reject(new Error(`push refused: ${JSON.stringify(reply)}`)))
      .receive("timeout", () => reject(new Error("push timed out")))
  })
}

async function main() {
  const a = joinOn("a", urlA)
  const b = joinOn("b", urlB)
  const channelA = await a.joined
  await b.joined
  await push(channelA, {body: "hello from a"})
  await push(channelA, {body: "fence"})
  await Promise.all([a.fence, b.fence])
  clearTimeout(guard)
  finish(0)
}

main().catch(error => finish(1, String(error)))
