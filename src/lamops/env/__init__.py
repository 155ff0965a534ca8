"""The built-in Word-like environment: real .docx documents, a ribbon UI, task families and a verifier."""
