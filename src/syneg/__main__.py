from syneg.cli import main

main()
