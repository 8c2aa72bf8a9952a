import streamlit as st

st.set_page_config(page_title="Streamlit demo · Portico")
st.title("Hello from Streamlit")
st.caption("Served by Portico. Type a name and press Enter: the answer comes back over Streamlit's WebSocket.")

# Portico tells every dashboard who is signed in (docs/accounts.md, "Identity to dashboards").
email = st.context.headers.get("X-Forwarded-Email")
groups = st.context.headers.get("X-Forwarded-Groups") or "none"
st.write(f"Signed in as {email} (groups: {groups})" if email else "Not signed in.")

name = st.text_input("Your name")
if name:
    st.text(f"Hello, {name}, from Streamlit!")

count = st.slider("How many squares?", 1, 10, 5)
st.bar_chart({"square": [n * n for n in range(1, count + 1)]})
