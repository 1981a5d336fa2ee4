"""Protocol clients. They speak their protocol and return data; they never assert."""
