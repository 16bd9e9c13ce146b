from msfkit.cli import main

main()
