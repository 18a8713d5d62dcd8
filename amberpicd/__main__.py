from amberpicd.cli.main import entry

entry()
