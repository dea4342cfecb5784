from gmmkit.cli import main

main()
