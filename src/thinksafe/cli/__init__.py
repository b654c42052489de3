def main():
    from .app import app
    app()
