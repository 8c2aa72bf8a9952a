from flask import Flask, jsonify, render_template_string, request

app = Flask(__name__)

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Flask demo · Portico</title>
<style>body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; }</style></head>
<body>
<h1>Hello from Flask</h1>
<p id="who">{{ who }}</p>
<p>Served by Portico (gunicorn behind it). Type a name: the answer comes back from a JSON endpoint.</p>
<label for="name">Your name</label><br>
<input id="name" type="text" autocomplete="off">
<p id="greeting">Type your name above.</p>
<script>
  // Relative URL: works at the app's own host and under /apps/<name>/ alike.
  const input = document.getElementById("name");
  const out = document.getElementById("greeting");
  // Answers can arrive out of order (one request per keystroke): show only the latest.
  let latest = 0;
  input.addEventListener("input", async () => {
    const mine = ++latest;
    const response = await fetch("api/greet?name=" + encodeURIComponent(input.value));
    const { greeting } = await response.json();
    if (mine === latest) out.textContent = greeting;
  });
</script>
</body>
</html>"""


@app.get("/")
def index():
    # Portico tells every dashboard who is signed in, in request headers.
    email = request.headers.get("X-Forwarded-Email")
    groups = request.headers.get("X-Forwarded-Groups") or "none"
    who = f"Signed in as {email} (groups: {groups})" if email else "Not signed in."
    return render_template_string(PAGE, who=who)


@app.get("/api/greet")
def greet():
    name = request.args.get("name", "").strip()
    return jsonify(greeting=f"Hello, {name}, from Flask!" if name else "Type your name above.")
