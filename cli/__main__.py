from msfkit.cli.main import main

main()
