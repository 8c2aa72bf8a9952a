import streamlit as st

st.set_page_config(page_title="Streamlit demo · Portico")
st.title("Hello from Streamlit")
st.caption("Served by Portico. Type a name and press Enter: the answer comes back over Streamlit's WebSocket.")

name = st.text_input("Your name")
if name:
    st.text(f"Hello, {name}, from Streamlit!")

count = st.slider("How many squares?", 1, 10, 5)
st.bar_chart({"square": [n * n for n in range(1, count + 1)]})
