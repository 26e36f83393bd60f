"""The command-line front door: commands, import and export, status and reports. Thin: it
calls the loop and renders what comes back.
"""
